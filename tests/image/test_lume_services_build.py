"""LUME_SERVICES_VERSION: lume-services from ${LUME_SERVICES_REPOSITORY}/archive/refs/tags/."""

from __future__ import annotations

import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.net import free_port

pytestmark = pytest.mark.docker

TAG = "v9.9.9"
PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "lume-services"
version = "9.9.9"
# Unpinned on purpose: the image's lock must keep pydantic<2 and prefect 1.2.4.
dependencies = ["pydantic", "prefect"]
"""


def github_archive(directory: Path, tag: str) -> None:
    """Write the tarball GitHub serves for a tag: one top directory <repo>-<version>/."""
    target = directory / "slaclab" / "lume-services" / "archive" / "refs" / "tags"
    target.mkdir(parents=True)
    files = {
        "pyproject.toml": PYPROJECT,
        "lume_services/__init__.py": '__version__ = "9.9.9"\n',
    }
    with tarfile.open(target / f"{tag}.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"lume-services-{tag.lstrip('v')}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def repository(tmp_path: Path):
    github_archive(tmp_path, TAG)
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slaclab/lume-services"
    server.shutdown()
    server.server_close()


def build_args(repository: str, version: str) -> list:
    return [
        "--target",
        "prod",
        "--build-arg",
        f"LUME_SERVICES_REPOSITORY={repository}",
        "--build-arg",
        f"LUME_SERVICES_VERSION={version}",
    ]


def test_prod_installs_lume_services_from_the_tag_archive(
    docker_build, containers, repository: str
) -> None:
    image = "prefect-agent-test:lume-services"
    built = docker_build(*build_args(repository, TAG), tag=image)
    assert built.returncode == 0, built.stderr[-3000:]
    code = (
        "import lume_services, prefect, pydantic;"
        "print(lume_services.__version__, prefect.__version__, pydantic.VERSION)"
    )
    result = containers.run_to_end(image, ["python", "-c", code])
    assert result.exit_code == 0, result
    lume_version, prefect_version, pydantic_version = result.stdout.split()
    assert lume_version == "9.9.9"
    assert prefect_version == "1.2.4"  # the lock constrains what lume-services pulls in
    assert pydantic_version.startswith("1.")


def test_a_missing_tag_fails_the_build_clearly(docker_build, repository: str) -> None:
    built = docker_build(*build_args(repository, "v0.0.0-missing"))
    assert built.returncode != 0
    assert "HTTP 404" in built.stderr
    assert "is LUME_SERVICES_VERSION a tag of that repository?" in built.stderr


def test_an_unreachable_repository_fails_the_build_clearly(docker_build) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/slaclab/lume-services"
    built = docker_build(*build_args(unreachable, TAG))
    assert built.returncode != 0
    assert "cannot reach LUME_SERVICES_REPOSITORY" in built.stderr
    assert "Connection refused" in built.stderr
