"""``make run``, for real: the agent container it starts, and how it is started."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from testbed.docker import socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY
from testbed.net import free_port

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_name(docker_client):
    """A name for the container, and (as make's IMAGE) for its cache volume; both removed."""
    name = f"pa-test-make-run-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["make", "-C", str(ROOT), "stop", f"RUN_NAME={name}"], capture_output=True)
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.volumes.get(f"{name}-cache").remove(force=True)


def test_make_run_starts_a_hardened_agent_with_a_restart_policy(
    docker_client, docker_cli, prod_image, prefect_api, run_name, tmp_path
) -> None:
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")  # only mounted: the agent never reads it
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BOOTSTRAP_", "PREFECT__", "EXTRA_", "PIP_", "CONDA_"))
        and key.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    }
    environment.update(
        PREFECT__CLOUD__API=prefect_api.url,
        BOOTSTRAP_AGENT_ADDRESS=f"http://127.0.0.1:{free_port()}",
        BOOTSTRAP_DOCKER_NETWORKS="host",  # flow runs reach the loopback server (it checks)
        DOCKER=docker_cli,
        HTTPS_PROXY="http://127.0.0.1:9",  # passed; the server (loopback) stays direct
        PIP_FIND_LINKS="/nowhere",  # not passed: only what the docs list
        EXTRA_CA_CERT=str(ca),
    )
    result = subprocess.run(
        ["make", "-C", str(ROOT), "run", f"RUN_NAME={run_name}", f"RUN_IMAGE={prod_image}",
         "RUN_FOLLOW=false", f"IMAGE={run_name}", "RUN_ARGS=--label pa-test-run-args=yes"],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    container = docker_client.containers.get(run_name)
    wait_for_log(container, AGENT_READY, timeout=120)
    host = container.attrs["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert host["GroupAdd"] == [socket_gid()]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "host"
    assert container.attrs["Config"]["User"] == "prefect"  # never root, from the start
    (agent,) = prefect_api.agents()
    assert agent["type"] == "DockerAgent"
    env = container.attrs["Config"]["Env"]
    assert "HTTPS_PROXY=http://127.0.0.1:9" in env
    assert not [item for item in env if item.startswith("PIP_FIND_LINKS")]
    assert "EXTRA_CA_CERT=/etc/prefect-agent/extra-ca.pem" in env  # the host file, mounted
    (mount,) = [m for m in container.attrs["Mounts"] if m["Source"] == str(ca)]
    assert (mount["Destination"], mount["RW"]) == ("/etc/prefect-agent/extra-ca.pem", False)
    assert container.labels["pa-test-run-args"] == "yes"


def test_make_run_runs_the_prod_image_by_default() -> None:
    recipe = subprocess.run(
        ["make", "-C", str(ROOT), "--dry-run", "run", "DOCKER=docker"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert recipe.returncode == 0, recipe.stderr
    assert "\tprefect-agent:prod >/dev/null" in recipe.stdout
