"""BOOTSTRAP_AGENT_MAX_FLOW_RUNS through the prod image's Docker agent: never more flow-run
containers alive than the limit, every run done, and flows of flows that cannot deadlock."""

from __future__ import annotations

import pytest

from testbed.agent_stand import DockerAgentStand
from testbed.flow_runs import AliveContainers, flow_run_containers, wait_final

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


@pytest.fixture
def watch_alive(docker_client, stand):
    """Started after the agent registered: call with nothing; closed at teardown."""
    watches = []

    def watch() -> AliveContainers:
        (agent,) = stand.api.agents()
        watches.append(AliveContainers(docker_client, agent["id"]))
        return watches[-1]

    yield watch
    for each in watches:
        each.close()


@pytest.fixture
def stand(prefect_api, containers, prod_image) -> DockerAgentStand:
    return DockerAgentStand(prefect_api, containers, prod_image)


def test_six_runs_under_a_limit_of_two(stand, prefect_api, watch_alive) -> None:
    stand.start_agent(BOOTSTRAP_AGENT_MAX_FLOW_RUNS="2")
    alive = watch_alive()
    flow_id = stand.register("four_seconds.py")
    runs = [stand.run(flow_id) for _ in range(6)]
    assert set(wait_final(prefect_api, runs, timeout=300).values()) == {"Success"}
    assert alive.most == 2, alive.most
    assert sorted(alive.starts) == sorted(runs)  # each once


def test_two_flows_of_flows_under_a_limit_of_two_both_succeed(
    stand, prefect_api, watch_alive
) -> None:
    stand.start_agent(BOOTSTRAP_AGENT_MAX_FLOW_RUNS="2")
    alive = watch_alive()
    stand.register("four_seconds.py")
    parent_flow = stand.register("parent.py")
    parents = [stand.run(parent_flow) for _ in range(2)]
    states = wait_final(prefect_api, parents, timeout=300)
    assert states == dict.fromkeys(parents, "Success"), [
        prefect_api.flow_run(run)["serialized_state"]["message"] for run in parents
    ]
    assert len(alive.starts) == 4  # two parents, two children
    assert alive.most >= 3  # children ran above the limit while their parents waited


def test_every_flow_run_container_gets_the_memory_default_and_ceilings_hold(
    stand, prefect_api, docker_client
) -> None:
    """The default under each run's host_config; a run asking past the ceiling is refused."""
    stand.start_agent(
        BOOTSTRAP_DOCKER_MEMORY="512m",
        BOOTSTRAP_DOCKER_PIDS_LIMIT="256",
        BOOTSTRAP_FLOW_RUN_MAX_MEMORY="1g",
        BOOTSTRAP_DOCKER_FAILED_CONTAINER_RETENTION="600",
    )
    plain = stand.run(stand.register("sleeps.py"))
    greedy = stand.run(stand.register("four_seconds.py", host_config={"mem_limit": "2g"}))
    states = wait_final(prefect_api, [greedy], timeout=120)
    assert states == {greedy: "Failed"}
    message = prefect_api.flow_run(greedy)["serialized_state"]["message"]
    assert "rule 'resources': memory 2g is above the agent's ceiling (1024m)" in message
    (container,) = prefect_api.wait_until(
        lambda: flow_run_containers(docker_client, plain, stopped=False),
        120,
        what="the plain run's container",
    )
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == 512 * 2**20
    assert host_config["PidsLimit"] == 256
    assert host_config["AutoRemove"] is False  # the agent removes it, after reading its exit
    container.remove(force=True)
