"""The server's background services against the agent, on a clock 40 times faster (Lazarus
every 15 s, judging a heartbeat older than 15 s stale; the zombie killer every 3 s), with the
flow runs' own heartbeat every second (``PREFECT__CLOUD__HEARTBEAT_INTERVAL``, prefect's
setting, scaled alike):

- a flow-run container that installs extras longer than the Lazarus window is not resubmitted
  and runs once;
- a killed flow-run container: the stock 1.2.4 agent (``prefect agent docker start`` in the
  same image) leaves the run to the zombie killer and Lazarus, which start it a second time;
  the image's agent ends it Failed at once, and Lazarus has nothing to do;
- three agents on the same labels, behind three GraphQL replicas (each with its own
  Submitted lock), start each of 30 runs in exactly one container.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from prefect_api_double import PrefectApiDouble
from testbed.agent_stand import DockerAgentStand
from testbed.docker import wait_for_log
from testbed.flow_runs import (
    AGENT_READY,
    assert_ran_exactly_once,
    flow_run_containers,
    sleeping_container,
    state_names,
    wait_final,
)
from testbed.packages import PackageServer, build_repo

# The server's clocks sped up: never beside the tests that start dozens of containers at once
# ("load" group, tests/conftest.py), whose load could hold a heartbeat past a sped-up window.
pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.xdist_group("load")]

# Lazarus' 10 minutes are 15 s here, and it looks every 15 s: longer than a heartbeat (1 s)
# can be late on a loaded host; the slow install (45 s) outlasts two windows, so that a run
# without heartbeats would be caught.
SPEEDUP = 40
FAST_HEARTBEAT = {"PREFECT__CLOUD__HEARTBEAT_INTERVAL": "1"}
SLOW_WHEEL = "slowpkg-0.1.0-py3-none-any.whl"


@pytest.fixture
def fast_api(make_prefect_api):
    return make_prefect_api(services_speedup=SPEEDUP)


@pytest.fixture
def stand(fast_api, containers, prod_image) -> DockerAgentStand:
    return DockerAgentStand(fast_api, containers, prod_image)


@pytest.fixture(scope="module")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageServer]:
    with PackageServer(build_repo(tmp_path_factory.mktemp("repo"))) as server:
        yield server


def test_a_slow_extras_install_is_not_resubmitted_by_lazarus(
    stand, fast_api, package_server
) -> None:
    package_server.delay[SLOW_WHEEL] = 45  # three Lazarus windows (15 s) on one wheel
    stand.start_agent()
    env = {
        **FAST_HEARTBEAT,
        "EXTRA_PIP_PACKAGES": f"--index-url {package_server.url}/simple slowpkg",
        "UV_HTTP_TIMEOUT": "120",  # uv gives up on a silent server after 30 s
    }
    run_id = stand.run(stand.register("squares.py", env=env))
    final = wait_final(fast_api, [run_id], timeout=180)
    assert final == {run_id: "Success"}, fast_api.flow_run(run_id)["state_message"]
    assert any(path.endswith(SLOW_WHEEL) for path in package_server.requests)
    assert fast_api.services.passes["lazarus"] >= 2  # Lazarus ran during the install
    assert fast_api.flow_run(run_id)["times_resurrected"] == 0
    assert_ran_exactly_once(fast_api, run_id)


def test_a_killed_run_the_stock_agent_starts_twice_ours_ends_once(
    stand, fast_api, docker_client, container_creations
) -> None:
    ours = stand.start_agent()  # creates the tenant and project; then stands aside
    ours.stop(timeout=10)
    flow_id = stand.register("sleeps.py", env=FAST_HEARTBEAT)
    stock = stand.start_stock_agent()
    stock_run = stand.run(flow_id)
    sleeping_container(docker_client, stock_run).kill()
    resubmitted = lambda: state_names(fast_api, stock_run).count("Submitted") >= 2  # noqa: E731
    PrefectApiDouble.wait_until(
        resubmitted, 90, what="the zombie killer and Lazarus resubmitting the stock run"
    )
    assert fast_api.flow_run(stock_run)["times_resurrected"] >= 1
    PrefectApiDouble.wait_until(
        lambda: container_creations.of([stock_run])[stock_run] >= 2, 60, what="a second container"
    )
    assert "Rescheduled by a Lazarus process." in [
        state["message"] for state in fast_api.flow_run_states(stock_run)
    ]
    stock.remove(force=True)
    for container in flow_run_containers(docker_client, stock_run):
        container.remove(force=True)

    ours.start()
    wait_for_log(ours, AGENT_READY, timeout=120)
    our_run = stand.run(flow_id)
    sleeping_container(docker_client, our_run).kill()
    PrefectApiDouble.wait_until(
        lambda: fast_api.flow_run(our_run)["state"] == "Failed", 30, what="Failed"
    )
    # Failed at once, by the agent, so that Lazarus (which takes only Submitted or Running
    # runs) has nothing to bring back: a whole pass later the run is still Failed, once.
    passes = fast_api.services.passes["lazarus"]
    PrefectApiDouble.wait_until(
        lambda: fast_api.services.passes["lazarus"] > passes + 1, 60, what="a Lazarus pass"
    )
    history = state_names(fast_api, our_run)
    assert history.count("Submitted") == 1, history
    assert container_creations.of([our_run]) == {our_run: 1}
    assert history[-1] == "Failed", history
    assert fast_api.flow_run(our_run)["times_resurrected"] == 0


def test_three_agents_behind_three_replicas_start_each_run_once(
    make_prefect_api, containers, prod_image, container_creations
) -> None:
    api = make_prefect_api(graphql_replicas=3)
    stands = [DockerAgentStand(api, containers, prod_image) for _ in range(3)]
    for stand in stands:
        stand.start_agent()
    flow_id = stands[0].register("squares.py")
    runs = [stands[0].run(flow_id, parameters={"n": 1}) for _ in range(30)]
    states = wait_final(api, runs, timeout=600)
    failed = {
        run_id: (state_names(api, run_id), api.flow_run(run_id)["serialized_state"]["message"])
        for run_id, state in states.items()
        if state != "Success"
    }
    assert failed == {}
    assert container_creations.of(runs) == dict.fromkeys(runs, 1)
    for run_id in runs:
        history = state_names(api, run_id)
        assert history.count("Running") == 1, history  # one flow runner, in one container
