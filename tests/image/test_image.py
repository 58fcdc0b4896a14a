"""The built images: versions, packages, user, labels, and nothing secret inside."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Iterator, List

import docker
import pytest

from testbed.docker import ROOT, pinned_base_image

pytestmark = pytest.mark.docker

PREFECT_VERSION = os.environ.get("PREFECT_VERSION", "1.2.4")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


def test_prefect_version_is_the_build_arg(containers, any_image: str) -> None:
    result = containers.run_to_end(any_image, ["prefect", "version"])
    assert result.exit_code == 0, result
    assert result.stdout.strip() == PREFECT_VERSION


def test_the_runtime_packages_import(containers, any_image: str) -> None:
    code = (
        "import bootstrap, docker, kubernetes, lume, prefect, pydantic, uv;"
        "import lume.base;"
        "print(pydantic.VERSION)"
    )
    result = containers.run_to_end(any_image, ["python", "-c", code])
    assert result.exit_code == 0, result
    assert result.stdout.strip().startswith("1.")  # pydantic<2


def test_commands_run_as_the_non_root_user(containers, any_image: str) -> None:
    """The image starts as root; the entrypoint drops root before any command runs, and
    gives the run phase the runtime environment first on PATH and a HOME."""
    probe = ["sh", "-c", "id -u; echo $HOME; command -v python"]
    for user, uid in ((None, "1000"), ("1000", "1000"), ("4242:0", "4242")):
        result = containers.run_to_end(any_image, probe, user=user)
        assert result.exit_code == 0, result
        assert result.stdout.split() == [uid, "/home/prefect", "/opt/prefect/bin/python"], user


def test_image_metadata(docker_client: docker.DockerClient, any_image: str) -> None:
    config = docker_client.images.get(any_image).attrs["Config"]
    labels = config["Labels"]
    for key in ("version", "revision", "source", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["io.prefect.version"] == PREFECT_VERSION
    # the base asked for, and the one used (the offline base stands in here for the default)
    assert labels["io.prefect-agent.base.requested"] == pinned_base_image()
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    assert config["StopSignal"] == "SIGINT"
    # Absolute paths to root-owned files only: these run as root (the image's default user).
    assert config["Healthcheck"]["Test"] == [
        "CMD",
        "/usr/local/libexec/prefect-agent/python",
        "-I",
        "-S",
        "/usr/local/lib/prefect-agent/root-step.py",
        "healthcheck",
    ]
    assert config["Entrypoint"] == [  # drops root, then execs tini -g -- the entrypoint
        "/usr/local/libexec/prefect-agent/python",
        "-I",
        "-S",
        "/usr/local/lib/prefect-agent/root-step.py",
        "start",
    ]
    assert config["User"] == "0"  # only to add the socket's group: the entrypoint drops root
    path = next(item for item in config["Env"] if item.startswith("PATH="))
    assert path.startswith("PATH=/usr/local/libexec/prefect-agent/bin:")  # root-owned wrappers
    assert "/opt/prefect/bin" not in path  # the runtime user's: never on root's PATH
    assert not [item for item in config["Env"] if item.startswith("HOME=")]  # each user's own
    # the runtime user's caches are the run phase's: a root docker exec reads none of them
    caches = ("XDG_CACHE_HOME=", "CONDA_PKGS_DIRS=")
    assert not [item for item in config["Env"] if item.startswith(caches)]
    assert "EXTRA_CONDA_PACKAGES=" in config["Env"]
    assert "EXTRA_PIP_PACKAGES=" in config["Env"]
    assert "8080/tcp" in config["ExposedPorts"]


IMPORT_EVERYTHING = """
import importlib, pkgutil, sysconfig
site = sysconfig.get_paths()["purelib"]
names = sorted({module.name for module in pkgutil.iter_modules([site])})
names.sort(key=lambda name: name != "setuptools")  # before anything imports distutils
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(len(names), failed)
"""


def test_every_top_level_module_imports_from_the_stripped_libraries(
    containers, prod_image: str
) -> None:
    """The build strips the shared libraries (build.sh strip-native): every top-level module
    of the environment, native ones included, still imports, and numpy's and scipy's
    vendored BLAS still compute."""
    result = containers.run_to_end(prod_image, ["python", "-c", IMPORT_EVERYTHING])
    assert result.exit_code == 0, result
    count, failed = result.stdout.strip().split(" ", 1)
    assert int(count) > 60
    assert failed == "{}", failed
    maths = "import numpy, scipy.linalg; print(scipy.linalg.det(numpy.eye(3) * 2))"
    result = containers.run_to_end(prod_image, ["python", "-c", maths])
    assert result.stdout.strip() == "8.0", result


def test_the_cores_optional_imports_are_on_record(containers, any_image: str) -> None:
    """Written by the build once everything is installed: what the extras check imports
    the core again for (requests tries simplejson, urllib3 brotli)."""
    record = "/opt/prefect/.prefect-agent/optional-imports.txt"
    result = containers.run_to_end(any_image, ["cat", record])
    assert result.exit_code == 0, result
    names = result.stdout.split()
    assert "simplejson" in names
    assert "prefect" not in names  # installed: not an optional import


def test_prod_has_no_compilers_and_no_test_tools(containers, prod_image: str) -> None:
    probe = "for tool in gcc cc g++ c++ make pytest ruff; do command -v $tool; done; true"
    result = containers.run_to_end(prod_image, ["sh", "-c", probe])
    assert result.exit_code == 0, result
    assert result.stdout.strip() == ""


def test_no_package_caches_are_shipped(containers, any_image: str) -> None:
    """No uv/pip/conda caches in the layers: the cache directory is empty until used."""
    probe = (
        "find /var/cache/prefect-agent /home/prefect /root /tmp /opt/prefect/pkgs"
        " -mindepth 1 \\( -name '.cache' -o -name 'uv' -o -name 'pip' -o -name '*.whl'"
        " -o -name '*.conda' -o -name '*.tar.bz2' \\) -print 2>/dev/null; true"
    )
    result = containers.run_to_end(any_image, ["sh", "-c", probe], user="0", entrypoint=[])
    assert result.exit_code == 0, result
    assert result.stdout.strip() == ""


def test_dev_has_the_test_tools_and_an_editable_bootstrap(containers, dev_image: str) -> None:
    code = "import bootstrap, pytest; print(bootstrap.__file__)"
    result = containers.run_to_end(dev_image, ["python", "-c", code])
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "/opt/src/bootstrap/__init__.py"


def _layer_files(docker_cli: str, image: str, workdir: Path) -> Iterator[tarfile.TarFile]:
    archive = workdir / "image.tar"
    subprocess.run([docker_cli, "save", "--output", str(archive), image], check=True)
    with tarfile.open(archive) as saved:
        for member in saved.getmembers():
            if member.name.endswith("layer.tar") or member.name.startswith("blobs/"):
                handle = saved.extractfile(member)
                if handle is None:
                    continue
                try:
                    with tarfile.open(fileobj=handle) as layer:
                        yield layer
                except tarfile.ReadError:
                    continue  # a config blob, not a layer


def _local_ca_bodies() -> List[bytes]:
    """Base64 bodies of the CA certificates this host added (a TLS proxy's CA on CI)."""
    bodies = []
    for path in sorted(LOCAL_CA_DIR.glob("*.crt")):
        text = path.read_text()
        for block in re.findall(r"-----BEGIN CERTIFICATE-----(.+?)-----END", text, re.S):
            lines = block.split()
            bodies.append(lines[len(lines) // 2].encode())  # a full 64-character line
    return bodies


def test_no_build_secret_or_ca_file_in_layers_or_history(
    docker_cli: str, any_image: str, tmp_path: Path
) -> None:
    """The proxy CA handed to the build as a secret must be nowhere in the image."""
    history = subprocess.run(
        [docker_cli, "history", "--no-trunc", "--format", "{{.CreatedBy}}", any_image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BEGIN CERTIFICATE" not in history
    assert "/run/secrets/extra_ca" not in history  # only the mount's id, never a copy

    markers = _local_ca_bodies()
    suspicious = re.compile(r"(^|/)(ca-bundle\.[A-Za-z0-9]+|extra_ca)$|^run/secrets/")
    found = []
    for layer in _layer_files(docker_cli, any_image, tmp_path):
        for member in layer.getmembers():
            if suspicious.search(member.name):
                found.append(member.name)
            if markers and member.isfile() and member.size < 5_000_000:
                handle = layer.extractfile(member)
                content = handle.read() if handle else b""
                if any(marker in content for marker in markers):
                    found.append(f"{member.name} (contains a local CA)")
    assert found == []


@pytest.mark.skipif(
    not list(LOCAL_CA_DIR.glob("*.crt")), reason="this host adds no CA of its own to look for"
)
def test_the_build_really_used_the_local_ca() -> None:
    """Guards the test above: on this host the build needed the proxy CA it looks for."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert all(marker in bundle for marker in _local_ca_bodies())


def test_entrypoint_passes_arguments_through_unchanged(containers, any_image: str) -> None:
    args = ["python", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME", ";", "--x"]
    result = containers.run_to_end(any_image, args)
    assert result.exit_code == 0, result
    assert json.loads(result.stdout.replace("'", '"')) == ["a b", "$HOME", ";", "--x"]


def test_an_unknown_command_fails_clearly(containers, any_image: str) -> None:
    result = containers.run_to_end(any_image, ["no-such-command"])
    assert result.exit_code != 0
    assert "cannot run 'no-such-command'" in result.output
    assert "Traceback" not in result.output


# The base image ------------------------------------------------------------------------------


def base_image_script(docker_cli: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / "base-image.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER": docker_cli, **env},
        timeout=300,
    )


def test_an_explicit_base_that_cannot_be_pulled_fails_the_build(docker_cli: str) -> None:
    missing = "registry.invalid/lume/no-such-base:1"
    chosen = base_image_script(docker_cli, BASE_IMAGE=missing, BASE_IMAGE_EXPLICIT="1")
    assert chosen.returncode == 1, chosen
    assert f"BASE_IMAGE={missing} cannot be used" in chosen.stderr
    assert chosen.stdout == ""  # no image to build on
    # the same name as a default falls back to the offline base, and says so
    default = base_image_script(docker_cli, BASE_IMAGE=missing, BASE_IMAGE_EXPLICIT="0")
    assert default.returncode == 0, default
    assert default.stdout.strip() == "prefect-agent-base:bookworm"
    assert "using the offline base" in default.stderr


@pytest.mark.parametrize(("given", "explicit"), [((), "0"), (("BASE_IMAGE=lume/base:1",), "1")])
def test_make_tells_an_explicit_base_from_the_default(given, explicit: str) -> None:
    recipe = subprocess.run(
        ["make", "--dry-run", "build-prod", "DOCKER=docker", *given],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recipe.returncode == 0, recipe.stderr
    assert f"BASE_IMAGE_EXPLICIT={explicit}" in recipe.stdout
