"""A real ``prefect agent local start`` (subprocess) runs real flows against the double.

The agent polls the double, submits the runs it may take, and spawns
``prefect execute flow-run`` processes that run the flows and report task-run states
and logs back to the double.
"""

from __future__ import annotations

from prefect.engine.state import State

from prefect_api_double import registration

from .helpers import FAILING_FLOW, OK_FLOW


def _register(prefect_api, path, labels):
    flow = registration.load_flow(str(path))
    return registration.register_flow(flow, prefect_api.url, "proj", labels=labels)


def _messages_if(prefect_api, flow_run_id, needle):
    """The flow run's log messages once one of them contains ``needle``, else None."""
    messages = [log["message"] for log in prefect_api.logs(flow_run_id)]
    return messages if any(needle in m for m in messages) else None


def _dump(prefect_api, agent) -> str:
    lines = [f"{r.status} {r.fields} {r.errors}" for r in prefect_api.requests]
    return "\n".join(["--- requests ---", *lines, "--- agent output ---", agent.output()])


def test_local_agent_runs_flows_against_the_double(prefect_api, prefect_api_tenant, local_agent):
    tenant = prefect_api_tenant
    prefect_api.create_project("proj", tenant)
    ok_flow = _register(prefect_api, OK_FLOW, ["e2e"])
    failing_flow = _register(prefect_api, FAILING_FLOW, ["e2e"])
    ok_run = registration.create_flow_run(
        prefect_api.url, flow_id=ok_flow, parameters={"n": 4}, labels=["e2e"]
    )
    failing_run = registration.create_flow_run(
        prefect_api.url, flow_id=failing_flow, labels=["e2e"]
    )
    # needs a label the agent does not have: must stay Scheduled
    gpu_run = registration.create_flow_run(prefect_api.url, flow_id=ok_flow, labels=["e2e", "gpu"])
    prefect_api.clear_requests()

    agent = local_agent(labels=["e2e"], max_polls=4, tenant_id=tenant)
    try:
        ok = prefect_api.wait_for_flow_run_state(ok_run, timeout=120)
        failed = prefect_api.wait_for_flow_run_state(failing_run, timeout=120)
        assert agent.wait(timeout=60) == 0
    except Exception:
        print(_dump(prefect_api, agent))
        raise

    # --- the successful run: flow run and every task run succeeded
    assert ok["state"] == "Success", _dump(prefect_api, agent)
    history = [s["state"] for s in prefect_api.flow_run_states(ok_run)]
    assert history == ["Scheduled", "Submitted", "Running", "Success"]
    task_runs = prefect_api.task_runs(ok_run)
    assert all(State.deserialize(t["serialized_state"]).is_successful() for t in task_runs)
    assert {t["state"] for t in task_runs} == {"Success", "Mapped"}
    children = [t for t in task_runs if t["task_slug"] == "double-1" and t["map_index"] >= 0]
    assert sorted(t["map_index"] for t in children) == [0, 1, 2, 3]
    assert all(t["start_time"] and t["end_time"] for t in children)
    # flow-run processes ship logs in batches from a background thread: wait for them
    messages = prefect_api.wait_until(
        lambda: _messages_if(prefect_api, ok_run, "total is 12"), timeout=60, what="ok run logs"
    )  # 2 * (0 + 1 + 2 + 3), computed from the parameter n=4
    assert any(m.startswith("doubling ") for m in messages)

    # --- the failing run: Failed, with the exception in the failing task run's state
    assert failed["state"] == "Failed"
    assert failed["state_message"] == "Some reference tasks failed."
    (explode,) = [t for t in prefect_api.task_runs(failing_run) if t["task_slug"] == "explode-1"]
    assert explode["state"] == "Failed"
    assert "ValueError('boom 42')" in explode["state_message"]
    prefect_api.wait_until(
        lambda: _messages_if(prefect_api, failing_run, "boom 42"), timeout=60, what="logs"
    )

    # --- the run the agent may not take
    gpu = prefect_api.flow_run(gpu_run)
    assert (gpu["state"], gpu["version"], gpu["agent_id"]) == ("Scheduled", 1, None)

    # --- what was sent
    (agent_row,) = prefect_api.agents()
    assert agent_row["type"] == "LocalAgent"
    assert agent_row["labels"] == ["e2e"]
    assert ok["agent_id"] == failed["agent_id"] == agent_row["id"]

    fields = prefect_api.fields_called()
    for expected in (
        "register_agent",
        "hello",
        "get_runs_in_queue",
        "flow_run",
        "set_flow_run_states",
        "flow_run_by_pk",
        "get_or_create_task_run_info",
        "set_task_run_states",
        "write_run_logs",
    ):
        assert expected in fields, expected
    assert fields.index("register_agent") < fields.index("get_runs_in_queue")

    polls = prefect_api.requests_for("get_runs_in_queue")
    assert len(polls) == 4  # --max-polls 4
    assert {p.header("X-PREFECT-AGENT-ID") for p in polls} == {agent_row["id"]}
    assert polls[0].input["labels"] == ["e2e"]
    assert polls[0].input["tenant_id"] == tenant
    assert set(polls[0].response["data"]["get_runs_in_queue"]["flow_run_ids"]) == {
        ok_run,
        failing_run,
    }

    submitted = [
        r.input["states"][0]
        for r in prefect_api.requests_for("set_flow_run_states")
        if r.input["states"][0]["state"]["type"] == "Submitted"
    ]
    assert {s["flow_run_id"] for s in submitted} == {ok_run, failing_run}
    assert all(s["version"] == 1 for s in submitted)

    # nothing the agent or the flow runs sent was refused
    refused = [(r.fields, r.status, r.errors) for r in prefect_api.requests if r.errors]
    assert refused == []
    assert {r.status for r in prefect_api.requests} == {200}
