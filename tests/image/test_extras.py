"""EXTRA_CONDA_PACKAGES / EXTRA_PIP_PACKAGES in the built image (no conda CLI here: py-rattler).

The packages are built by the tests (tests/fixtures/extras.py) and served from the host's
loopback; containers use the host network. "Unchanged" is checked with ``docker diff``
(nothing added to or deleted from /opt/prefect) and, after a rollback, by comparing
``uv pip freeze`` and conda-meta of the stopped container (committed) with the image's.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Dict, Iterator

import docker
import pytest

from testbed.docker import Containers, wait_for_log
from testbed.net import free_port
from testbed.packages import PackageServer, build_repo, make_tls
from tests.helpers.containers import changes, in_env

pytestmark = pytest.mark.docker

CACHE = "/var/cache/prefect-agent"
IMPORT_ALL = (
    "import os, tinyconda, tinypkg; "
    "print('IMPORTED', tinypkg.VERSION, tinyconda.FROM, os.getuid()); "
    "print('META', sorted(os.listdir('/opt/prefect/conda-meta')))"
)
MARK_COMMAND = ["sh", "-c", "touch /tmp/command-ran; echo COMMAND-RAN"]
ENV_LISTING = (
    "uv pip freeze --python /opt/prefect/bin/python; "
    "ls -a /opt/prefect; ls -a /opt/prefect/conda-meta 2>&1 || true"
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


@pytest.fixture
def server(repo: PackageServer) -> PackageServer:
    repo.delay.clear()
    repo.clear()
    return repo


@pytest.fixture
def cache_volume(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"pa-test-extras-{uuid.uuid4().hex[:10]}"
    docker_client.volumes.create(name)
    yield name
    for container in docker_client.containers.list(
        ignore_removed=True, all=True, filters={"volume": name}
    ):
        container.remove(force=True)
    docker_client.volumes.get(name).remove(force=True)


def extras(server: PackageServer, conda: str = "", pip: str = "") -> Dict[str, str]:
    values = {}
    if conda:
        values["EXTRA_CONDA_PACKAGES"] = f"-c {server.url}/channel {conda}"
    if pip:
        values["EXTRA_PIP_PACKAGES"] = f"--index-url {server.url}/simple {pip}"
    return values


def finish(container, timeout: float = 120) -> int:
    return container.wait(timeout=timeout)["StatusCode"]


def logs(container) -> str:
    return container.logs().decode(errors="replace")


def env_listing(docker_client: docker.DockerClient, image: str) -> str:
    return docker_client.containers.run(
        image, ["-c", ENV_LISTING], entrypoint="sh", network_mode="host", remove=True
    ).decode()


def user_kwargs(user):
    return {"user": user} if user else {}


# Installed, cached, skipped ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "uid"),
    [("0", "1000"), (None, "1000"), ("4242:0", "4242")],
    ids=["root-start", "default-user", "openshift-uid"],  # a random uid in group 0, no passwd
)
def test_extras_are_installed_cached_and_skipped_on_restart(
    cache_volume, containers: Containers, prod_image, server, user, uid
):
    options = {
        "environment": extras(server, conda="tinyconda", pip="tinypkg"),
        "volumes": {cache_volume: {"bind": CACHE, "mode": "rw"}},
        **user_kwargs(user),
    }
    first = containers.run(prod_image, ["python", "-c", IMPORT_ALL], **options)
    assert finish(first) == 0, logs(first)
    output = logs(first)
    assert f"IMPORTED 0.1.0 conda {uid}" in output  # root starts drop to the runtime user
    assert "'tinyconda-0.1.0-py_0.json'" in output
    assert "conda [tinyconda] with py-rattler" in output
    assert "pip [tinypkg] with uv 0." in output
    assert "Conda plan by rattler" in output
    assert "Pip plan by uv" in output
    assert "Installed conda packages with rattler in" in output
    assert "Installed pip packages with uv in" in output
    assert sorted(server.downloads()) == [
        "/channel/noarch/tinyconda-0.1.0-py_0.tar.bz2",
        "/files/tinydep-0.2.0-py3-none-any.whl",
        "/files/tinypkg-0.1.0-py3-none-any.whl",
    ]

    # A new container, same cache volume: installed again, but nothing downloaded.
    server.clear()
    second = containers.run(prod_image, ["python", "-c", IMPORT_ALL], **options)
    assert finish(second) == 0, logs(second)
    assert f"IMPORTED 0.1.0 conda {uid}" in logs(second)
    assert server.downloads() == [], server.requests

    # The first container again (docker start): extras satisfied, installers skipped.
    server.clear()
    first.start()
    assert finish(first) == 0, logs(first)
    output = logs(first)
    assert output.count(f"IMPORTED 0.1.0 conda {uid}") == 2
    assert output.count("Installing extra packages") == 1
    assert "Extra packages already installed (fingerprint" in output
    assert server.requests == []  # no installer ran: not even an index page


def test_default_command_goes_on_to_wait_for_the_server(containers: Containers, prod_image, server):
    environment = {
        **extras(server, pip="tinypkg"),
        "PREFECT__CLOUD__API": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "BOOTSTRAP_WAIT_TIMEOUT": "120",
    }
    container = containers.run(prod_image, environment=environment)
    wait_for_log(container, r"Waiting up to \d+ s for the Prefect Server", timeout=90)
    output = logs(container)
    assert output.index("Installed pip packages with uv") < output.index("Waiting up to")


def test_pip_fallback_without_uv(containers: Containers, prod_image, server):
    environment = {
        "EXTRA_PIP_PACKAGES": f"--no-index --find-links {server.url}/wheels/ tinypkg",
        "EXTRA_PIP_INSTALLER": "pip",
    }
    result = containers.run_to_end(
        prod_image,
        ["python", "-c", "import tinypkg; print('IMPORTED', tinypkg.VERSION)"],
        environment=environment,
        user="1000",
    )
    assert result.exit_code == 0, result
    assert "pip [tinypkg] with pip " in result.output
    assert "Installed pip packages with pip in" in result.output
    assert "IMPORTED 0.1.0" in result.output


# Failures stop the container; the environment stays as it was --------------------------------


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"pip": "tinypkg tinypgk"}, ["uv cannot install", "tinypgk was not found"]),
        ({"pip": "tinypkg==9.9"}, ["uv cannot install", "no version of tinypkg==9.9"]),
        ({"conda": "tinyconda tinycondaa"}, ["rattler cannot install", "tinycondaa"]),
        ({"raw": "numpy; touch /tmp/pwned"}, ["'numpy;' is not a valid requirement"]),
    ],
    ids=["pip-misspelt", "pip-unsatisfiable", "conda-misspelt", "injection"],
)
def test_bad_extras_stop_the_container_before_its_command(
    containers: Containers, prod_image, server, request_, expected
):
    environment = extras(
        server, conda=request_.get("conda", "tinyconda"), pip=request_.get("pip", "tinypkg")
    )
    if "raw" in request_:
        environment["EXTRA_PIP_PACKAGES"] = request_["raw"]
    container = containers.run(prod_image, MARK_COMMAND, environment=environment)
    assert finish(container) == 6
    output = logs(container)
    assert "ERROR - bootstrap | EXTRA_" in output
    for fragment in expected:
        assert fragment in output
    assert "COMMAND-RAN" not in output
    changed = changes(container)
    assert "A /tmp/command-ran" not in changed
    assert "A /tmp/pwned" not in changed
    assert in_env(changed) == []
    assert server.downloads() == []  # planning reads metadata only


@pytest.mark.parametrize("user", ["0", None], ids=["root-start", "default-user"])
def test_a_pip_failure_after_the_conda_step_rolls_both_back(
    containers: Containers, docker_client, prod_image, server, user
):
    environment = extras(server, conda="tinyconda", pip="tinypkg badpkg")
    container = containers.run(
        prod_image, MARK_COMMAND, environment=environment, **user_kwargs(user)
    )
    assert finish(container) == 6
    output = logs(container)
    assert "Installed conda packages with rattler" in output  # it had succeeded
    assert "uv failed to install tinypkg badpkg" in output
    assert "Unsupported wheel major version" in output
    assert "the environment was rolled back (removed" in output
    assert "COMMAND-RAN" not in output
    assert in_env(changes(container)) == []
    committed = container.commit(repository="pa-test-extras-rollback", tag=uuid.uuid4().hex[:8])
    try:
        assert env_listing(docker_client, committed.id) == env_listing(docker_client, prod_image)
    finally:
        docker_client.images.remove(committed.id, force=True)


def test_docker_stop_while_installing_rolls_back(containers: Containers, prod_image, server):
    server.delay["slowpkg-0.1.0-py3-none-any.whl"] = 30  # the pip step hangs downloading it
    environment = extras(server, conda="tinyconda", pip="tinypkg slowpkg")
    container = containers.run(prod_image, MARK_COMMAND, environment=environment)
    wait_for_log(container, "Installed conda packages with rattler", timeout=60)
    time.sleep(0.5)
    started = time.monotonic()
    container.stop(timeout=30)  # STOPSIGNAL SIGINT, through tini to the bootstrap
    assert time.monotonic() - started < 20  # not killed at the timeout
    assert finish(container) == 130
    output = logs(container)
    assert "stopped by SIGINT while installing extra packages" in output
    assert "the environment was rolled back" in output
    assert "COMMAND-RAN" not in output
    assert in_env(changes(container)) == []


def test_an_install_killed_midway_is_rolled_back_at_the_next_start(
    containers: Containers, prod_image, server
):
    server.delay["slowpkg-0.1.0-py3-none-any.whl"] = 30
    environment = extras(server, conda="tinyconda", pip="tinypkg slowpkg")
    command = ["python", "-c", "import tinypkg, slowpkg, tinyconda; print('IMPORTED')"]
    container = containers.run(prod_image, command, environment=environment)
    wait_for_log(container, "Installed conda packages with rattler", timeout=60)
    time.sleep(0.5)
    container.kill()  # SIGKILL: no chance to roll back now
    finish(container)
    server.delay.clear()
    container.start()
    assert finish(container) == 0, logs(container)
    output = logs(container)
    assert "An earlier install of extra packages did not finish: rolling it back" in output
    assert "Rolled back: removed" in output
    assert "IMPORTED" in output


# An extra CA at run time ---------------------------------------------------------------------


def test_extra_ca_cert_trusts_a_private_https_index_and_channel(
    containers: Containers, prod_image, repo, tmp_path: Path
):
    certs = tmp_path / "certs"
    _ca, cert, key = make_tls(certs)  # the CA is ca.pem, mounted below
    certs.chmod(0o755)
    with PackageServer(repo.root, tls=(cert, key)) as https:
        environment = {
            **extras(https, conda="tinyconda", pip="tinypkg"),
            "EXTRA_CA_CERT": "/certs/ca.pem",
        }
        result = containers.run_to_end(
            prod_image,
            ["python", "-c", IMPORT_ALL],
            environment=environment,
            volumes={str(certs): {"bind": "/certs", "mode": "ro"}},
        )
        # without it: refused, and the message says what would help
        untrusted = containers.run_to_end(
            prod_image, ["true"], environment=extras(https, pip="tinypkg")
        )
    assert result.exit_code == 0, result
    assert "IMPORTED 0.1.0 conda 1000" in result.output
    assert untrusted.exit_code == 6, untrusted
    assert "set EXTRA_CA_CERT to its CA certificate" in untrusted.output
