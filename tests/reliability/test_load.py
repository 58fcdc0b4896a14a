"""Concurrency and load: agents starting together, and one agent draining a queue of runs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from testbed.docker import HOST_SOCKET, socket_gid, wait_for_log
from testbed.flow_runs import AGENT_READY, FINAL_STATES, assert_ran_exactly_once, wait_final
from testbed.net import free_port
from tests.helpers.containers import assert_no_traceback
from tests.helpers.figures import figure

# Dozens of containers at once: one such test at a time ("load" group, tests/conftest.py),
# beside lighter ones.
pytestmark = [pytest.mark.reliability, pytest.mark.docker, pytest.mark.xdist_group("load")]

AGENTS = 8
RUNS = 50
PROJECTS = ["lume", "models", "ml"]


def test_eight_agents_starting_at_once_share_one_tenant_and_its_projects(
    containers, dev_image, prefect_api
) -> None:
    ports = set()
    while len(ports) < AGENTS:
        ports.add(free_port())

    def start(index_port):
        index, port = index_port
        return containers.run(
            dev_image,
            environment={
                "PREFECT__CLOUD__API": prefect_api.url,
                "BOOTSTRAP_TENANT": "LUME",
                "BOOTSTRAP_PROJECTS": ",".join(PROJECTS),
                "BOOTSTRAP_AGENT_NAME": f"agent-{index}",
                "BOOTSTRAP_AGENT_LABELS": "lume",
                "BOOTSTRAP_AGENT_ADDRESS": f"http://:{port}",
            },
            volumes={HOST_SOCKET: {"bind": HOST_SOCKET, "mode": "rw"}},
            group_add=[socket_gid()],
        )

    started = time.monotonic()
    with ThreadPoolExecutor(AGENTS) as pool:
        agents = list(pool.map(start, enumerate(sorted(ports))))
    for agent in agents:
        wait_for_log(agent, AGENT_READY, timeout=240)
    figure(f"{AGENTS} agents started at once: all polling after", time.monotonic() - started)

    (tenant,) = prefect_api.tenants()
    assert tenant["slug"] == "lume"
    projects = prefect_api.projects(tenant["id"])
    assert sorted(project["name"] for project in projects) == sorted(PROJECTS)
    registered = prefect_api.agents()
    assert sorted(agent["name"] for agent in registered) == [f"agent-{i}" for i in range(AGENTS)]
    assert {agent["tenant_id"] for agent in registered} == {tenant["id"]}

    logs = [agent.logs().decode() for agent in agents]
    for output in logs:
        assert_no_traceback(output)
    everything = "\n".join(logs)
    assert everything.count("Created tenant 'lume'") == 1
    for name in PROJECTS:
        assert everything.count(f"Created project '{name}'") == 1
        assert everything.count(f"project '{name}'") == AGENTS  # the others use it


def test_one_agent_drains_a_queue_of_fifty_runs_each_exactly_once(
    docker_agent_stand, container_creations
) -> None:
    stand = docker_agent_stand
    stand.start_agent()
    api = stand.api
    flow_id = stand.register("squares.py")
    created = time.monotonic()
    runs = [stand.run(flow_id, parameters={"n": 1}) for _ in range(RUNS)]
    figure(f"{RUNS} runs created", time.monotonic() - created)
    states = wait_final(api, runs, timeout=600)
    drained = time.monotonic() - created
    figure(f"{RUNS}-run queue drained (all final)", drained)
    assert set(states.values()) == {"Success"}, states
    for run in runs:
        assert_ran_exactly_once(api, run)
    assert container_creations.of(runs) == dict.fromkeys(runs, 1)
    assert [run["id"] for run in api.flow_runs() if run["state"] not in FINAL_STATES] == []
