"""Queue, state, task-run, log and agent semantics of the double (as the real server)."""

from __future__ import annotations

import datetime

import pendulum
import pytest
from prefect.engine import state as states

from prefect_api_double import registration

from .helpers import (
    GET_RUNS_IN_QUEUE,
    OK_FLOW,
    REGISTER_AGENT,
    SET_FLOW_RUN_STATES,
    SET_TASK_RUN_STATES,
    data,
    messages,
    post,
)

FAR_FUTURE = "2100-01-01T00:00:00+00:00"
MISSING = "0c7e6c2e-1111-4222-8333-944455556666"


@pytest.fixture
def flow_id(prefect_api, prefect_api_tenant):
    prefect_api.create_project("proj", prefect_api_tenant)
    flow = registration.load_flow(str(OK_FLOW))
    return registration.register_flow(flow, prefect_api.url, "proj")


def new_run(prefect_api, flow_id, **kwargs):
    return registration.create_flow_run(prefect_api.url, flow_id=flow_id, **kwargs)


def queue(prefect_api, tenant_id, labels=(), before=FAR_FUTURE, headers=None):
    payload = prefect_api.execute(
        GET_RUNS_IN_QUEUE,
        {"input": {"tenant_id": tenant_id, "labels": list(labels), "before": before}},
        headers,
    )
    return data(payload)["get_runs_in_queue"]["flow_run_ids"]


def set_flow_state(prefect_api, run_id, state, version=None, headers=None):
    return prefect_api.execute(
        SET_FLOW_RUN_STATES,
        {"input": {"states": [{"flow_run_id": run_id, "version": version, "state": state}]}},
        headers,
    )


def set_task_state(prefect_api, task_run_id, state, version=None):
    return prefect_api.execute(
        SET_TASK_RUN_STATES,
        {"input": {"states": [{"task_run_id": task_run_id, "version": version, "state": state}]}},
    )


def test_label_rule_run_labels_must_be_a_subset_of_the_agents(
    prefect_api, prefect_api_tenant, flow_id
):
    run_l = new_run(prefect_api, flow_id, labels=["L"])
    run_lm = new_run(prefect_api, flow_id, labels=["L", "M"])
    run_none = new_run(prefect_api, flow_id, labels=[])
    tenant = prefect_api_tenant
    assert queue(prefect_api, tenant, ["L"]) == [run_l]
    assert set(queue(prefect_api, tenant, ["M", "L", "X"])) == {run_l, run_lm}
    assert queue(prefect_api, tenant, ["X"]) == []
    # unlabeled runs only go to agents without labels, and those take nothing else
    assert queue(prefect_api, tenant, []) == [run_none]


def test_queue_is_scoped_to_the_tenant(prefect_api, prefect_api_tenant, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    other = prefect_api.create_tenant("other")
    assert queue(prefect_api, other) == []
    assert queue(prefect_api, prefect_api_tenant) == [run_id]


def test_runs_in_the_future_wait_for_before(prefect_api, prefect_api_tenant, flow_id):
    later = pendulum.now("UTC").add(hours=1)
    run_id = new_run(prefect_api, flow_id, labels=[], scheduled_start_time=later)
    now = pendulum.now("UTC").isoformat()
    assert queue(prefect_api, prefect_api_tenant, before=now) == []
    two_hours = pendulum.now("UTC").add(hours=2).isoformat()
    assert queue(prefect_api, prefect_api_tenant, before=two_hours) == [run_id]
    # without `before` the server uses "now"
    payload = prefect_api.execute(
        GET_RUNS_IN_QUEUE, {"input": {"tenant_id": prefect_api_tenant, "labels": []}}
    )
    assert data(payload)["get_runs_in_queue"]["flow_run_ids"] == []


def test_queue_returns_at_most_25_oldest_first(prefect_api, prefect_api_tenant, flow_id):
    base = pendulum.datetime(2020, 1, 1, tz="UTC")
    ids = [
        new_run(prefect_api, flow_id, labels=[], scheduled_start_time=base.add(minutes=i))
        for i in reversed(range(30))
    ]
    assert queue(prefect_api, prefect_api_tenant) == list(reversed(ids))[:25]


def test_running_flow_run_with_a_retrying_task_run_is_queued(
    prefect_api, prefect_api_tenant, flow_id
):
    run_id = new_run(prefect_api, flow_id, labels=[])
    data(set_flow_state(prefect_api, run_id, states.Running().serialize()))
    assert queue(prefect_api, prefect_api_tenant) == []
    task_run = prefect_api.task_runs(run_id)[0]
    retry = states.Retrying(start_time=pendulum.now("UTC").subtract(seconds=1))
    data(set_task_state(prefect_api, task_run["id"], retry.serialize()))
    assert queue(prefect_api, prefect_api_tenant) == [run_id]


def test_null_labels_fail_like_the_server(prefect_api, prefect_api_tenant):
    payload = prefect_api.execute(
        GET_RUNS_IN_QUEUE, {"input": {"tenant_id": prefect_api_tenant, "labels": None}}
    )
    assert messages(payload) == ["'NoneType' object has no attribute 'sort'"]


def test_state_versions_and_submitted_lock(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    assert prefect_api.flow_run(run_id)["version"] == 1
    submitted = states.Submitted(message="Submitted for execution").serialize()
    payload = set_flow_state(prefect_api, run_id, submitted, version=1)
    assert data(payload)["set_flow_run_states"]["states"] == [
        {"id": run_id, "status": "SUCCESS", "message": None}
    ]
    run = prefect_api.flow_run(run_id)
    assert (run["state"], run["version"]) == ("Submitted", 2)
    assert run["heartbeat"] is not None
    # a second Submitted within 30 seconds is refused
    payload = set_flow_run_again = set_flow_state(prefect_api, run_id, submitted, version=2)
    assert messages(set_flow_run_again) == [
        "State update failed: this run has already been submitted."
    ]
    assert payload["data"] == {"set_flow_run_states": None}
    # the lock lives in the API process: a restarted API accepts a new Submitted
    prefect_api.restart()
    data(set_flow_state(prefect_api, run_id, submitted, version=2))
    # like the open-source server, a stale version is accepted (no version locking)
    data(set_flow_state(prefect_api, run_id, states.Running().serialize(), version=0))
    run = prefect_api.flow_run(run_id)
    assert (run["state"], run["version"], run["start_time"] is not None) == ("Running", 4, True)
    data(set_flow_state(prefect_api, run_id, states.Success(message="done").serialize()))
    run = prefect_api.flow_run(run_id)
    assert (run["state"], run["state_message"], run["version"]) == ("Success", "done", 5)
    assert run["end_time"] >= run["start_time"]
    history = [s["state"] for s in prefect_api.flow_run_states(run_id)]
    assert history == ["Scheduled", "Submitted", "Submitted", "Running", "Success"]


def test_task_run_cannot_run_before_its_flow_run(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    task_run = prefect_api.task_runs(run_id)[0]
    payload = set_task_state(prefect_api, task_run["id"], states.Running().serialize())
    assert messages(payload) == [
        f"State update failed for task run ID {task_run['id']}: provided a running state "
        f"but associated flow run {run_id} is not in a running state."
    ]
    data(set_flow_state(prefect_api, run_id, states.Running().serialize()))
    data(set_task_state(prefect_api, task_run["id"], states.Running().serialize()))
    assert prefect_api.task_runs(run_id)[0]["state"] == "Running"
    assert prefect_api.task_runs(run_id)[0]["version"] == 1


def test_unknown_ids_give_the_servers_messages(prefect_api, flow_id):
    running = states.Running().serialize()
    assert messages(set_flow_state(prefect_api, MISSING, running)) == [
        f"State update failed for flow run ID {MISSING}"
    ]
    assert messages(set_task_state(prefect_api, MISSING, running)) == [
        f"State update failed for task run ID {MISSING}"
    ]
    query = "query($id: UUID!) { get_task_run_info(task_run_id: $id) { id } }"
    assert messages(prefect_api.execute(query, {"id": MISSING})) == ["Invalid task run ID"]
    run_id = new_run(prefect_api, flow_id, labels=[])
    mutation = (
        "mutation { get_or_create_task_run_info(input: "
        f'{{flow_run_id: "{run_id}", task_id: "{MISSING}", map_index: 2}}) {{ id }} }}'
    )
    assert messages(prefect_api.execute(mutation)) == ["Invalid task ID"]


def test_get_or_create_task_run_info_creates_mapped_children(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    parent = next(t for t in prefect_api.task_runs(run_id) if t["task_slug"] == "double-1")
    mutation = (
        "mutation { get_or_create_task_run_info(input: "
        f'{{flow_run_id: "{run_id}", task_id: "{parent["task_id"]}", map_index: 0}}) '
        "{ id version state serialized_state } }"
    )
    first = data(prefect_api.execute(mutation))["get_or_create_task_run_info"]
    assert (first["version"], first["state"]) == (0, "Pending")
    assert first["serialized_state"]["type"] == "Pending"
    assert data(prefect_api.execute(mutation))["get_or_create_task_run_info"]["id"] == first["id"]
    child = next(t for t in prefect_api.task_runs(run_id) if t["map_index"] == 0)
    assert child["id"] == first["id"]
    query = "query($id: UUID!) { mapped_children(task_run_id: $id) { state_counts } }"
    counts = data(prefect_api.execute(query, {"id": parent["id"]}))["mapped_children"]
    assert counts == {"state_counts": {"Pending": 1}}


def test_write_run_logs(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    mutation = (
        "mutation($input: write_run_logs_input!) { write_run_logs(input: $input) { success } }"
    )
    logs = [
        {"flow_run_id": run_id, "message": "hello", "level": "INFO", "name": "t"},
        {"flow_run_id": run_id, "message": "oops", "level": "ERROR", "timestamp": FAR_FUTURE},
    ]
    assert data(prefect_api.execute(mutation, {"input": {"logs": logs}})) == {
        "write_run_logs": {"success": True}
    }
    stored = prefect_api.logs(run_id)
    assert [(log["message"], log["level"]) for log in stored] == [
        ("hello", "INFO"),
        ("oops", "ERROR"),
    ]
    assert stored[1]["timestamp"] == datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    bad = [{"flow_run_id": MISSING, "message": "x"}]
    assert messages(prefect_api.execute(mutation, {"input": {"logs": bad}})) == [
        "Foreign key violation."
    ]
    bad_level = [{"flow_run_id": run_id, "level": "LOUD"}]
    assert prefect_api.execute(mutation, {"input": {"logs": bad_level}}).get("data") is None


def test_register_agent(prefect_api):
    agent_input = {"type": "LocalAgent", "name": "a", "labels": ["b", "a"]}
    assert messages(prefect_api.execute(REGISTER_AGENT, {"input": agent_input})) == [
        "No tenant found."
    ]
    tenant = prefect_api.create_tenant("t")
    headers = {"X-PREFECT-CORE-VERSION": "1.2.4"}
    first = data(prefect_api.execute(REGISTER_AGENT, {"input": agent_input}, headers))
    again = data(prefect_api.execute(REGISTER_AGENT, {"input": agent_input}, headers))
    assert first == again  # same tenant, name, type, core version and labels
    other = dict(agent_input, labels=["a"])
    assert data(prefect_api.execute(REGISTER_AGENT, {"input": other}, headers)) != first
    (agent, _) = sorted(prefect_api.agents(), key=lambda a: len(a["labels"]), reverse=True)
    assert agent["labels"] == ["a", "b"]
    assert agent["tenant_id"] == tenant
    assert agent["core_version"] == "1.2.4"


def test_agent_id_header_is_used(prefect_api, prefect_api_tenant, flow_id):
    agent_id = data(
        prefect_api.execute(REGISTER_AGENT, {"input": {"type": "LocalAgent", "labels": []}})
    )["register_agent"]["id"]
    before = prefect_api.agents()[0]["last_queried"]
    run_id = new_run(prefect_api, flow_id, labels=[])
    headers = {"X-PREFECT-AGENT-ID": agent_id}
    assert queue(prefect_api, prefect_api_tenant, headers=headers) == [run_id]
    assert prefect_api.agents()[0]["last_queried"] > before
    data(set_flow_state(prefect_api, run_id, states.Submitted().serialize(), headers=headers))
    assert prefect_api.flow_run(run_id)["agent_id"] == agent_id


def test_cancel_flow_run(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    mutation = "mutation($id: UUID!) { cancel_flow_run(input: {flow_run_id: $id}) { state } }"
    assert data(prefect_api.execute(mutation, {"id": run_id})) == {
        "cancel_flow_run": {"state": "Cancelled"}
    }
    assert {t["state"] for t in prefect_api.task_runs(run_id)} == {"Cancelled"}
    assert messages(prefect_api.execute(mutation, {"id": MISSING})) == [
        f"Invalid flow run ID: {MISSING}."
    ]


def test_task_and_flow_run_names_and_heartbeats(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    task_run_id = prefect_api.task_runs(run_id)[0]["id"]
    rename = (
        "mutation($input: set_task_run_name_input!) { set_task_run_name(input: $input) "
        "{ success } }"
    )
    assert data(prefect_api.execute(rename, {"input": {"task_run_id": task_run_id, "name": "x"}}))
    assert prefect_api.task_runs(run_id)[0]["name"] == "x"
    assert messages(
        prefect_api.execute(rename, {"input": {"task_run_id": task_run_id, "name": ""}})
    ) == ["Invalid name"]
    beat = (
        "mutation { update_flow_run_heartbeat("
        f'input: {{flow_run_id: "{run_id}"}}) {{ success }} }}'
    )
    assert data(prefect_api.execute(beat)) == {"update_flow_run_heartbeat": {"success": True}}
    assert prefect_api.flow_run(run_id)["heartbeat"] is not None
    # the server updates heartbeats in the background and always reports success
    beat_missing = beat.replace(run_id, MISSING)
    assert data(prefect_api.execute(beat_missing)) == {
        "update_flow_run_heartbeat": {"success": True}
    }


def test_flow_run_queries_over_http(prefect_api, flow_id):
    run_id = new_run(prefect_api, flow_id, labels=[])
    query = (
        f'query {{ flow_run_by_pk(id: "{run_id}") {{ id name version serialized_state '
        "task_runs(where: {map_index: {_eq: -1}}) { id version task { id slug } serialized_state }"
        " flow { project { name id } } } }"
    )
    status, payload = post(prefect_api.url, query)
    assert status == 200
    run = payload["data"]["flow_run_by_pk"]
    assert run["version"] == 1
    assert len(run["task_runs"]) == 4
    assert run["flow"]["project"]["name"] == "proj"


def test_numeric_aggregates(prefect_api, flow_id):
    new_run(prefect_api, flow_id, labels=[])
    run_id = new_run(prefect_api, flow_id, labels=[])
    data(set_flow_state(prefect_api, run_id, states.Running().serialize()))
    q = (
        "query { flow_run_aggregate { aggregate { count sum { version } avg { version } "
        "max { version } var_pop { version } } } }"
    )
    aggregate = data(prefect_api.execute(q))["flow_run_aggregate"]["aggregate"]
    assert aggregate == {
        "count": 2,
        "sum": {"version": 3},
        "avg": {"version": 1.5},
        "max": {"version": 2},
        "var_pop": {"version": 0.25},
    }
