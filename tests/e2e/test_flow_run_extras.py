"""The agent's extra packages reach its flow runs (BOOTSTRAP_FLOW_RUN_EXTRAS, on by default):
a flow imports a package only the agent was asked to install, from the agent's cache.

Real parts: the engine, the image, the agent and its flow-run containers, a PEP 503 index of
wheels built by the tests on the host's loopback. The Prefect Server is the API double.
"""

from __future__ import annotations

import re
import uuid
from typing import Iterator

import docker
import pytest

from testbed.docker import HOST_SOCKET, wait_for_log
from testbed.packages import PackageServer, build_repo

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


@pytest.fixture
def cache_volume(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"pa-test-flow-extras-{uuid.uuid4().hex[:10]}"
    docker_client.volumes.create(name)
    yield name
    for container in docker_client.containers.list(
        ignore_removed=True, all=True, filters={"volume": name}
    ):
        container.remove(force=True)
    docker_client.volumes.get(name).remove(force=True)


def start(stand, index: PackageServer, cache_volume: str, **env: str) -> None:
    stand.start_agent(
        volumes={
            HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"},
            cache_volume: {"bind": "/var/cache/prefect-agent", "mode": "rw"},
        },
        EXTRA_PIP_PACKAGES=f"--index-url {index.url}/simple tinypkg",
        **env,
    )


def test_a_flow_imports_a_package_only_the_agent_was_asked_for(
    docker_agent_stand, index: PackageServer, cache_volume: str
) -> None:
    stand = docker_agent_stand
    start(stand, index, cache_volume)
    assert sorted(index.downloads()) == [
        "/files/tinydep-0.2.0-py3-none-any.whl",
        "/files/tinypkg-0.1.0-py3-none-any.whl",
    ]
    index.clear()
    run_id = stand.run(stand.register("imports.py"), parameters={"module": "tinypkg"})
    run = stand.api.wait_for_flow_run_state(run_id, timeout=180)
    assert run["state"] == "Success", stand.agent_logs()
    # the flow run's output, which reaches the agent's log after the state reaches the API
    wait_for_log(stand.agent, re.escape("imported tinypkg 0.1.0"), timeout=30)
    assert index.downloads() == []  # installed from the agent's cache volume


def test_without_flow_run_extras_the_flow_run_lacks_them(
    docker_agent_stand, index: PackageServer, cache_volume: str
) -> None:
    stand = docker_agent_stand
    start(stand, index, cache_volume, BOOTSTRAP_FLOW_RUN_EXTRAS="false")
    run_id = stand.run(stand.register("imports.py"), parameters={"module": "tinypkg"})
    run = stand.api.wait_for_flow_run_state(run_id, timeout=180)
    assert run["state"] == "Failed"
    wait_for_log(stand.agent, re.escape("No module named 'tinypkg'"), timeout=30)
