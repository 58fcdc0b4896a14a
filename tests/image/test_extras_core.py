"""Extra packages can never break the agent, in the prod image: the core (pydantic 1.10.27,
click 8.1.8, prefect ...) is held while resolving, a change to it is refused before anything
changes, and what breaks the core after installing is rolled back."""

from __future__ import annotations

from typing import Iterator

import pytest

from testbed.docker import Containers
from testbed.packages import PackageServer, build_core_repo
from tests.helpers.containers import changes, in_env

pytestmark = pytest.mark.docker

MARK_COMMAND = ["sh", "-c", "touch /tmp/command-ran; echo COMMAND-RAN"]
VERSIONS = (
    "import importlib.metadata as md; "
    "print('VERSIONS', md.version('steerable'), md.version('pydantic'), md.version('click'))"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_core_repo(tmp_path_factory.mktemp("core-repo"))) as repo:
        yield repo


def pip(server: PackageServer, request: str) -> dict:
    return {"EXTRA_PIP_PACKAGES": f"--index-url {server.url}/simple {request}"}


@pytest.mark.parametrize(
    ("request_", "change"),
    [
        ("pydantic==2.99.0", "pydantic 1.10.27 would become 2.99.0"),
        ("needs-pydantic2", "pydantic 1.10.27 would become 2.99.0"),
        ("old-click-user", "click 8.1.8 would become 7.0"),
    ],
)
def test_a_change_to_the_core_exits_6_before_anything_changes(
    containers: Containers, prod_image, server, request_, change
) -> None:
    container = containers.run(prod_image, MARK_COMMAND, environment=pip(server, request_))
    assert container.wait(timeout=120)["StatusCode"] == 6
    output = container.logs().decode()
    assert f"EXTRA_PIP_PACKAGES: {request_} cannot be installed without changing" in output
    assert change in output
    assert "prefect-agent-bootstrap" in output  # who needs it: the bootstrap needs pydantic<2
    assert "COMMAND-RAN" not in output
    assert in_env(changes(container)) == []  # docker diff: nothing added to or removed from it
    assert "A /tmp/command-ran" not in changes(container)


def test_what_fits_the_core_is_installed_at_a_version_that_fits(
    containers: Containers, prod_image, server
) -> None:
    result = containers.run_to_end(
        prod_image, ["python", "-c", VERSIONS], environment=pip(server, "steerable")
    )
    assert result.exit_code == 0, result
    assert "VERSIONS 1.0 1.10.27 8.1.8" in result.stdout  # 2.0 would need pydantic 2
    assert "Checked the environment in" in result.stderr


def test_a_package_that_breaks_the_core_is_rolled_back(
    containers: Containers, prod_image, server
) -> None:
    container = containers.run(prod_image, MARK_COMMAND, environment=pip(server, "breaker"))
    assert container.wait(timeout=120)["StatusCode"] == 6
    output = container.logs().decode()
    assert "the extra packages broke the environment: the core no longer imports" in output
    assert "the environment was rolled back" in output
    assert "COMMAND-RAN" not in output
    assert in_env(changes(container)) == []


def test_a_conda_package_needing_another_core_version_is_refused(
    containers: Containers, prod_image, server
) -> None:
    environment = {"EXTRA_CONDA_PACKAGES": f"-c {server.url}/channel needspydantic2"}
    container = containers.run(prod_image, MARK_COMMAND, environment=environment)
    assert container.wait(timeout=120)["StatusCode"] == 6
    output = container.logs().decode()
    assert "EXTRA_CONDA_PACKAGES: needspydantic2 cannot be installed without changing" in output
    assert "pydantic 1.10.27 would become another version" in output
    assert in_env(changes(container)) == []


def test_the_core_is_listed(containers: Containers, prod_image) -> None:
    result = containers.run_to_end(prod_image, ["prefect-agent-bootstrap", "extras", "protected"])
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert any(line.startswith("pydantic==1.10.27  <- prefect-agent-bootstrap") for line in lines)
    assert any(line.startswith("prefect==1.2.4  <- prefect-agent-bootstrap") for line in lines)
    assert any(line.startswith("numpy==") for line in lines)  # lume-base's, through scipy/h5py
