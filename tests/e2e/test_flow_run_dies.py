"""When a flow-run container dies, the prod image's Docker agent ends its run Failed with
the reason, within seconds, and keeps the container for diagnosis; a success leaves no
container behind. Stock prefect 1.2.4 leaves such runs Submitted or Running.

The Docker engine, the images, the agent and the flow-run containers are real; the Prefect
Server is the API double."""

from __future__ import annotations

import time

import pytest

from prefect_api_double import PrefectApiDouble
from testbed.agent_stand import DockerAgentStand
from testbed.flow_runs import (
    flow_run_containers,
    logs_saying,
    sleeping_container,
    state_names,
    wait_final,
)

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


@pytest.fixture
def stand(prefect_api, containers, prod_image) -> DockerAgentStand:
    return DockerAgentStand(prefect_api, containers, prod_image)


def failed_message(api, run_id: str) -> str:
    run = api.flow_run(run_id)
    assert run["state"] == "Failed", state_names(api, run_id)
    return run["serialized_state"]["message"]


def remove(docker_client, run_id: str) -> None:
    for container in flow_run_containers(docker_client, run_id):
        container.remove(force=True)


def test_a_killed_flow_run_container_fails_its_run_with_the_exit(
    stand, prefect_api, docker_client
) -> None:
    stand.start_agent()
    run_id = stand.run(stand.register("sleeps.py"))
    try:
        container = sleeping_container(docker_client, run_id)
        assert prefect_api.flow_run(run_id)["state"] == "Running"
        killed = time.monotonic()
        container.kill()  # SIGKILL, as the kernel's OOM killer sends
        PrefectApiDouble.wait_until(
            lambda: prefect_api.flow_run(run_id)["state"] == "Failed", 30, what="Failed"
        )
        seconds = time.monotonic() - killed
        print(f"container killed -> run Failed: {seconds:.2f} s")
        message = failed_message(prefect_api, run_id)
        assert "exited 137: killed (SIGKILL)" in message, message
        logs = logs_saying(prefect_api, run_id, "last lines of output")
        assert "e2e: sleeping" in logs
        container.reload()
        assert container.status == "exited"  # kept for docker logs
    finally:
        remove(docker_client, run_id)


def test_an_oom_killed_run_says_so(stand, prefect_api, docker_client) -> None:
    stand.start_agent()
    flow_id = stand.register("hungry.py", host_config={"mem_limit": "96m", "memswap_limit": "96m"})
    run_id = stand.run(flow_id)
    try:
        wait_final(prefect_api, [run_id], timeout=180)
        message = failed_message(prefect_api, run_id)
        assert "exited 137 (OOMKilled): out of memory" in message, message
    finally:
        remove(docker_client, run_id)


def test_a_flow_run_whose_extras_fail_ends_failed_with_the_installers_reason(
    stand, prefect_api, docker_client
) -> None:
    stand.start_agent()
    env = {"EXTRA_PIP_PACKAGES": "--no-index no-such-package-e2e"}
    run_id = stand.run(stand.register("squares.py", env=env))
    try:
        wait_final(prefect_api, [run_id], timeout=120)
        message = failed_message(prefect_api, run_id)
        # said by the container itself, before it exits 6 (the agent's watch would say it
        # otherwise: "exited 6: installing the extra packages failed")
        assert "could not install its extra packages (exit 6)" in message, message
        assert "EXTRA_PIP_PACKAGES" in message, message
        assert "Running" not in state_names(prefect_api, run_id)
    finally:
        remove(docker_client, run_id)


def test_a_successful_run_leaves_no_container(stand, prefect_api, docker_client) -> None:
    stand.start_agent()
    run_id = stand.run(stand.register("squares.py"), parameters={"n": 2})
    assert wait_final(prefect_api, [run_id], timeout=120) == {run_id: "Success"}
    PrefectApiDouble.wait_until(
        lambda: not flow_run_containers(docker_client, run_id), 30, what="container removed"
    )


def test_a_restarted_agent_ends_the_runs_whose_containers_died_while_it_was_down(
    stand, prefect_api, docker_client
) -> None:
    first = stand.start_agent()
    run_id = stand.run(stand.register("sleeps.py"))
    try:
        container = sleeping_container(docker_client, run_id)
        first.kill()  # the agent dies first, then its flow run
        container.kill()
        time.sleep(1)
        assert prefect_api.flow_run(run_id)["state"] == "Running"  # nobody noticed
        first.remove(force=True)
        stand.start_agent()
        PrefectApiDouble.wait_until(
            lambda: prefect_api.flow_run(run_id)["state"] == "Failed", 30, what="Failed"
        )
        assert "exited 137" in failed_message(prefect_api, run_id)
    finally:
        remove(docker_client, run_id)
