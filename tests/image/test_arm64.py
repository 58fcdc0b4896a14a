"""The arm64 prod image, built on this amd64 host through QEMU (make test-arm64, which builds
it first; the end of make test), runs under emulation: prefect, the bootstrap, and an agent
that registers with the API double."""

from __future__ import annotations

import os
import subprocess

import pytest

from testbed.docker import HOST_SOCKET, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY

pytestmark = [pytest.mark.docker, pytest.mark.arm64, pytest.mark.xdist_group("port-8080")]

ARM64_IMAGE = os.environ.get("ARM64_IMAGE", "prefect-agent:prod-arm64")


@pytest.fixture(scope="module")
def arm64_image(docker_cli: str) -> str:
    architecture = subprocess.run(
        [docker_cli, "image", "inspect", "--format", "{{.Architecture}}", ARM64_IMAGE],
        capture_output=True, text=True,
    )  # fmt: skip
    assert architecture.returncode == 0, f"{ARM64_IMAGE} is not built: make test-arm64 builds it"
    assert architecture.stdout.strip() == "arm64"
    return ARM64_IMAGE


def test_prefect_and_the_bootstrap_run_emulated(containers, arm64_image: str) -> None:
    machine = containers.run_to_end(arm64_image, ["uname", "-m"])
    assert machine.stdout.strip() == "aarch64"  # really emulated, not an amd64 image
    version = containers.run_to_end(arm64_image, ["prefect", "version"])
    assert version.exit_code == 0, version
    assert version.stdout.strip() == os.environ.get("PREFECT_VERSION", "1.2.4")
    helped = containers.run_to_end(arm64_image, ["prefect-agent-bootstrap", "--help"])
    assert helped.exit_code == 0, helped
    assert "Usage:" in helped.stdout


def test_an_arm64_agent_registers_with_the_server(
    containers, arm64_image: str, prefect_api
) -> None:
    agent = containers.run(
        arm64_image,
        environment={
            "PREFECT__CLOUD__API": prefect_api.url,
            "BOOTSTRAP_TENANT": "LUME",
            "BOOTSTRAP_PROJECTS": "lume",
            "BOOTSTRAP_AGENT_LABELS": "arm64",
        },
        volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
        group_add=[socket_gid()],
    )
    wait_for_log(agent, AGENT_READY, timeout=600)  # emulation: minutes, not seconds
    (registered,) = prefect_api.agents()
    assert registered["type"] == "DockerAgent"
    assert registered["labels"] == ["arm64"]
    assert [tenant["slug"] for tenant in prefect_api.tenants()] == ["lume"]
