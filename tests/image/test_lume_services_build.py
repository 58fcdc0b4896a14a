"""LUME_SERVICES_VERSION: a lume-services release from ${LUME_SERVICES_REPOSITORY}/archive/
refs/tags/<tag>.tar.gz, as GitHub serves it; the archives are made with ``git archive`` from a
repository that behaves as lume-services' does (tests/fixtures/lume_services_repo.py)."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from testbed.net import free_port
from tests.fixtures.lume_services_repo import serve_lume_services

pytestmark = pytest.mark.docker

RECORD = "/opt/prefect/share/prefect-agent/lume-services.json"
IMPORTS = (
    "import json, lume_services, lume_services.tasks, lume_services.flows, lume_model, prefect;"
    "import pydantic, importlib.metadata as m;"
    "print(json.dumps([lume_services.__version__, m.version('lume-model'), prefect.__version__,"
    " pydantic.VERSION, json.load(open('" + RECORD + "'))]))"
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_lume_services(tmp_path_factory.mktemp("lume-services"))


def build_args(repository: str, version: str) -> list:
    return [
        "--target",
        "prod",
        "--build-arg",
        f"LUME_SERVICES_REPOSITORY={repository}",
        "--build-arg",
        f"LUME_SERVICES_VERSION={version}",
    ]


def test_a_release_installs_as_it_is_with_what_its_flows_import(
    docker_build, containers, docker_client, repository: str
) -> None:
    """v0.1.3 tags the commit of v0.1.2, so its archive says 0.1.2 (as lume-services' does):
    installed as 0.1.2, recorded, with lume-model for lume_services.tasks."""
    image = "prefect-agent-test:lume-services"
    built = docker_build(*build_args(repository, "v0.1.3"), tag=image)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "build.sh: lume-services v0.1.3 is lume_services 0.1.2" in built.stderr
    result = containers.run_to_end(image, ["python", "-c", IMPORTS])
    assert result.exit_code == 0, result
    lume_version, lume_model, prefect_version, pydantic_version, record = json.loads(result.stdout)
    assert lume_version == "0.1.2"
    assert lume_model == "1.7.1"  # pinned in requirements-lume.lock: works with pydantic 1
    assert prefect_version == "1.2.4"  # the lock constrains what lume-services pulls in
    assert pydantic_version.startswith("1.")
    assert record == {
        "requested": "v0.1.3",
        "archive": f"{repository}/archive/refs/tags/v0.1.3.tar.gz",
        "distribution": "lume_services",
        "version": "0.1.2",
    }
    labels = docker_client.images.get(image).labels
    assert labels["io.prefect-agent.lume-services.requested"] == "v0.1.3"
    sbom = json.loads(
        containers.run_to_end(image, ["cat", "/usr/share/doc/prefect-agent/sbom.cdx.json"]).stdout
    )
    properties = {item["name"]: item["value"] for item in sbom["metadata"]["properties"]}
    assert properties["prefect-agent:lume-services.version"] == "0.1.2"
    listed = {(c["name"], c["version"]) for c in sbom["components"]}
    assert {("lume-services", "0.1.2"), ("lume-model", "1.7.1")} <= listed


def test_a_tag_that_is_no_version_still_installs(docker_build, repository: str) -> None:
    built = docker_build(*build_args(repository, "0.2.0"))
    assert built.returncode == 0, built.stderr[-3000:]
    assert "build.sh: lume-services 0.2.0 is lume_services 0+unknown" in built.stderr


def test_a_release_pinning_another_prefect_fails_naming_both(docker_build, repository: str) -> None:
    built = docker_build(*build_args(repository, "v0.3.0"))
    assert built.returncode != 0
    assert "lume-services v0.3.0 (lume_services 0.3.0) cannot be installed with this" in (
        built.stderr
    )
    assert "prefect==1.4.1" in built.stderr  # what the release needs
    assert "prefect==1.2.4" in built.stderr  # what the image pins


def test_a_missing_tag_fails_the_build_clearly(docker_build, repository: str) -> None:
    built = docker_build(*build_args(repository, "v0.0.0-missing"))
    assert built.returncode != 0
    assert "HTTP 404" in built.stderr
    assert "is LUME_SERVICES_VERSION a tag of that repository?" in built.stderr


def test_an_unreachable_repository_fails_the_build_clearly(docker_build) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/slaclab/lume-services"
    built = docker_build(*build_args(unreachable, "v0.1.3"))
    assert built.returncode != 0
    assert "cannot reach LUME_SERVICES_REPOSITORY" in built.stderr
    assert "Connection refused" in built.stderr
