"""The real server's background services in the double: Lazarus, the zombie killer, the
flow-group mutations that steer them and the runs' labels, the per-replica Submitted lock.

One pass of a service is called directly with an explicit time (``at``), or the services run
in their threads on a clock sped up 600 times (every 10 minutes becomes every second)."""

from __future__ import annotations

import datetime
import time

import pytest
from prefect.engine import state as states

from prefect_api_double import registration, towel
from prefect_api_double.store import now

from .helpers import OK_FLOW, SET_FLOW_RUN_STATES, data, messages

LATER = datetime.timedelta(minutes=11)


@pytest.fixture
def flow_id(prefect_api, prefect_api_tenant):
    prefect_api.create_project("proj", prefect_api_tenant)
    flow = registration.load_flow(str(OK_FLOW))
    return registration.register_flow(flow, prefect_api.url, "proj")


def new_run(api, flow_id, **kwargs):
    return registration.create_flow_run(api.url, flow_id=flow_id, labels=[], **kwargs)


def set_state(api, run_id, state):
    return api.execute(
        SET_FLOW_RUN_STATES,
        {"input": {"states": [{"flow_run_id": run_id, "state": state.serialize()}]}},
    )


def set_task_state(api, task_run_id, state):
    towel.service.set_task_run_state(api.store, task_run_id, state)


def mutate(api, name, **fields):
    query = f"mutation($input: {name}_input!) {{ {name}(input: $input) {{ success }} }}"
    return api.execute(query, {"input": fields})


def test_lazarus_reschedules_a_silent_submitted_run_three_times_then_fails_it(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id)
    clock = towel.Clock()
    for attempt in (1, 2, 3):
        data(set_state(prefect_api, run_id, states.Submitted("agent")))
        assert towel.lazarus(prefect_api.store, clock, at=now() + LATER - LATER / 2) == []
        assert towel.lazarus(prefect_api.store, clock, at=now() + LATER) == [run_id]
        run = prefect_api.flow_run(run_id)
        assert run["state"] == "Scheduled"
        assert run["serialized_state"]["message"] == "Rescheduled by a Lazarus process."
        assert run["times_resurrected"] == attempt
        prefect_api.app.reset_process_state()  # the 30 s Submitted lock, not the point here
    logs = [log["message"] for log in prefect_api.logs(run_id)]
    assert "Rescheduled by a Lazarus process. This is attempt 3." in logs
    data(set_state(prefect_api, run_id, states.Submitted("agent")))
    towel.lazarus(prefect_api.store, clock, at=now() + LATER)
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Failed"
    assert run["serialized_state"]["message"] == towel.LAZARUS_FAILED


def test_lazarus_leaves_runs_with_active_task_runs_or_lazarus_turned_off(prefect_api, flow_id):
    busy, off, silent = (new_run(prefect_api, flow_id) for _ in range(3))
    for run_id in (busy, off, silent):
        data(set_state(prefect_api, run_id, states.Running()))
    set_task_state(prefect_api, prefect_api.task_runs(busy)[0]["id"], states.Running())
    assert data(mutate(prefect_api, "disable_flow_lazarus_process", flow_id=flow_id))
    off_group_flow = prefect_api.flow_run(off)["flow_id"]
    assert off_group_flow == flow_id  # one flow group: off and silent share it
    assert towel.lazarus(prefect_api.store, towel.Clock(), at=now() + LATER) == []
    assert data(mutate(prefect_api, "enable_flow_lazarus_process", flow_id=flow_id))
    assert set(towel.lazarus(prefect_api.store, towel.Clock(), at=now() + LATER)) == {off, silent}
    prefect_api.store.update("flow_run", busy, {"heartbeat": None})
    assert towel.lazarus(prefect_api.store, towel.Clock(), at=now() + LATER * 10) == []


def test_the_zombie_killer_fails_running_task_runs_of_a_silent_flow_run(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id)
    data(set_state(prefect_api, run_id, states.Running()))
    task_run = prefect_api.task_runs(run_id)[0]
    set_task_state(prefect_api, task_run["id"], states.Running())
    assert towel.zombie_killer(prefect_api.store, towel.Clock(), at=now()) == []
    assert towel.zombie_killer(prefect_api.store, towel.Clock(), at=now() + LATER) == [
        task_run["id"]
    ]
    after = prefect_api.task_runs(run_id)[0]
    assert after["state"] == "Failed"
    assert after["serialized_state"]["message"].startswith(
        f"No heartbeat detected from the remote task; marking the task run {task_run['id']} ("
    )
    assert prefect_api.flow_run(run_id)["state"] == "Running"  # the flow run is Lazarus' job


def test_services_in_their_threads_on_a_fast_clock(make_prefect_api, tmp_path) -> None:
    api = make_prefect_api(services_speedup=600)  # 10 minutes: 1 s
    tenant = api.create_tenant("t", slug="t")
    api.create_project("proj", tenant)
    flow_id = registration.register_flow(registration.load_flow(str(OK_FLOW)), api.url, "proj")
    run_id = new_run(api, flow_id)
    data(set_state(api, run_id, states.Submitted("agent")))
    deadline = time.monotonic() + 10
    while api.flow_run(run_id)["state"] != "Scheduled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.flow_run(run_id)["state"] == "Scheduled"
    assert api.flow_run(run_id)["times_resurrected"] == 1
    assert api.services.passes["lazarus"] >= 1


def test_flow_group_labels_replace_the_flows_for_new_runs(prefect_api, flow_id):
    group_id = prefect_api.store.get("flow", flow_id)["flow_group_id"]
    before = registration.create_flow_run(prefect_api.url, flow_id=flow_id)
    assert data(mutate(prefect_api, "set_flow_group_labels", flow_group_id=group_id, labels=["x"]))
    after = registration.create_flow_run(prefect_api.url, flow_id=flow_id)
    assert prefect_api.flow_run(after)["labels"] == ["x"]
    assert prefect_api.flow_run(before)["labels"] != ["x"]  # fixed when the run was created
    run_config = {"type": "DockerRun", "labels": ["gpu"]}
    assert data(mutate(prefect_api, "set_flow_group_labels", flow_group_id=group_id, labels=None))
    assert data(
        mutate(
            prefect_api, "set_flow_group_run_config", flow_group_id=group_id, run_config=run_config
        )
    )
    latest = registration.create_flow_run(prefect_api.url, flow_id=flow_id)
    assert prefect_api.flow_run(latest)["labels"] == ["gpu"]
    missing = "0c7e6c2e-1111-4222-8333-944455556666"
    assert messages(mutate(prefect_api, "set_flow_group_labels", flow_group_id=missing)) == [
        "Invalid flow group ID"
    ]


def test_each_graphql_replica_has_its_own_submitted_lock(make_prefect_api) -> None:
    """Behind a balancer, two agents' Submitted updates can both succeed: the lock is per
    GraphQL process, which is why the agent itself must never start a run twice."""
    for replicas, second_accepted in ((1, False), (2, True)):
        api = make_prefect_api(graphql_replicas=replicas)
        api.create_project("proj", api.create_tenant("t", slug="t"))
        flow_id = registration.register_flow(registration.load_flow(str(OK_FLOW)), api.url, "proj")
        run_id = new_run(api, flow_id)
        api.app.reset_process_state()  # the run's creation took a turn of the round robin
        assert not messages(set_state(api, run_id, states.Submitted("agent a")))
        second = messages(set_state(api, run_id, states.Submitted("agent b")))
        assert (second == []) is second_accepted, second
        if not second_accepted:
            assert second == ["State update failed: this run has already been submitted."]
