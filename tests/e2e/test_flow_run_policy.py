"""The flow-run policy, end to end: flows whose DockerRun asks for the host are Failed with
the rule they broke, and no container is created for them; a flow within the agent's own
grants runs."""

from __future__ import annotations

import pytest

from testbed.agent_stand import FLOWS, FLOWS_IN_CONTAINER
from testbed.flow_runs import logs_saying, wait_final

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

ASKING_FOR_THE_HOST = {
    "privileged": {"privileged": True},
    "host-namespaces": {"pid_mode": "host"},
    "binds": {"binds": ["/:/host:ro"]},
    "security-options": {"security_opt": ["seccomp=unconfined"]},
    "capabilities": {"cap_add": ["SYS_ADMIN"]},
    "devices": {"devices": ["/dev/null:/dev/host-null"]},
    "network": {"network_mode": "some-other-network"},
}


def test_runs_asking_for_the_host_fail_by_rule_and_create_nothing(
    docker_agent_stand, container_creations
) -> None:
    stand = docker_agent_stand
    stand.start_agent()
    api = stand.api
    runs = {
        rule: stand.run(stand.register("squares.py", host_config=host_config, name=rule))
        for rule, host_config in ASKING_FOR_THE_HOST.items()
    }
    within = stand.run(
        stand.register(
            "squares.py",
            # no capability at all: the flow run starts as the runtime user, not as root
            # dropping root (which that would forbid)
            host_config={
                "binds": [f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro"],
                "mem_limit": "1g",
                "cap_drop": ["ALL"],
            },
        ),
        parameters={"n": 1},
    )
    states = wait_final(api, [*runs.values(), within], timeout=180)
    assert states[within] == "Success", stand.agent_logs()
    for rule, run_id in runs.items():
        assert states[run_id] == "Failed", (rule, stand.agent_logs())
        message = api.flow_run(run_id)["state_message"]
        assert f"refused by the agent's flow-run policy, rule {rule!r}" in message, message
    created = container_creations.of([*runs.values(), within])
    assert [created[run_id] for run_id in runs.values()] == [0] * len(runs)
    assert created[within] == 1


def test_a_run_given_the_docker_socket_can_use_it_as_the_runtime_user(
    docker_agent_stand,
) -> None:
    """Flow runs start as uid 1000, not root: the agent's socket volume comes with the
    socket's group, or a flow that drives Docker (a LUME-services model launching its own
    containers) would fail with "permission denied"."""
    stand = docker_agent_stand
    socket = "/var/run/docker.sock"
    stand.start_agent(BOOTSTRAP_DOCKER_VOLUMES=f"{FLOWS}:{FLOWS_IN_CONTAINER}:ro,{socket}:{socket}")
    run_id = stand.run(stand.register("docker_socket.py"))
    states = wait_final(stand.api, [run_id], timeout=180)
    assert states[run_id] == "Success", (stand.api.flow_run(run_id), stand.agent_logs())

    logs_saying(stand.api, run_id, "e2e uid=1000 engine=")
