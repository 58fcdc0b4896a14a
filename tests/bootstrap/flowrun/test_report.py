"""bootstrap.flowrun: a flow-run container speaks for its run (heartbeat while preparing,
Failed with the reason), and prefect's flow runner under ``python -m bootstrap.flowrun``
turns a stop signal into a Failed state. Against the API double over real HTTP; the flow
runner is prefect's own, in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from prefect.engine import state as states
from prefect.storage import Local

from bootstrap.flowrun.report import FlowRunRole, Heartbeat
from prefect_api_double import registration
from testbed.agent_stand import FLOWS

SET_STATES = (
    "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
    "{ states { id } } }"
)


@pytest.fixture
def run_id(prefect_api, prefect_api_tenant) -> str:
    prefect_api.create_project("proj", prefect_api_tenant)
    flow = registration.load_flow(str(FLOWS / "sleeps.py"))
    flow.storage = Local(path=str(FLOWS / "sleeps.py"), stored_as_script=True)
    flow.storage.add_flow(flow)
    flow_id = registration.register_flow(flow, prefect_api.url, "proj", build=False)
    return registration.create_flow_run(prefect_api.url, flow_id=flow_id, labels=[])


def role_env(prefect_api, run_id):
    return {"PREFECT__CONTEXT__FLOW_RUN_ID": run_id, "PREFECT__CLOUD__API": prefect_api.url}


def runner_env(prefect_api, run_id):
    """What prefect's agents give a flow-run process besides (populate_env_vars)."""
    return {
        **role_env(prefect_api, run_id),
        "PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS": "prefect.engine.cloud.CloudFlowRunner",
        "PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS": "prefect.engine.cloud.CloudTaskRunner",
    }


def test_the_role_is_a_flow_run_launched_by_an_agent(prefect_api, run_id) -> None:
    env = role_env(prefect_api, run_id)
    assert FlowRunRole.detect(env, ["prefect", "execute", "flow-run"]) == FlowRunRole(
        run_id, prefect_api.url
    )
    assert FlowRunRole.detect(env, ["prefect-agent-bootstrap", "run"]) is None
    assert FlowRunRole.detect({}, ["prefect", "execute", "flow-run"]) is None


def test_fail_ends_a_live_run_with_the_reason_and_leaves_a_finished_one(
    prefect_api, run_id
) -> None:
    role = FlowRunRole(run_id, prefect_api.url)
    assert role.fail("the flow-run container could not install its extra packages (exit 6)")
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Failed"
    assert run["serialized_state"]["message"].endswith("extra packages (exit 6)")
    assert any("exit 6" in log["message"] for log in prefect_api.logs(run_id))
    assert not role.fail("a second reason")  # finished: left as it is
    assert prefect_api.flow_run(run_id)["serialized_state"]["message"].endswith("(exit 6)")
    assert not FlowRunRole(run_id, "http://127.0.0.1:9/").fail("unreachable")  # no raise


def test_the_heartbeat_goes_on_while_the_container_prepares(prefect_api, run_id) -> None:
    prefect_api.execute(
        SET_STATES,
        {"input": {"states": [{"flow_run_id": run_id, "state": states.Submitted().serialize()}]}},
    )
    submitted = prefect_api.flow_run(run_id)["heartbeat"]
    with Heartbeat(FlowRunRole(run_id, prefect_api.url), interval=0.2) as beat:
        prefect_api.wait_until(lambda: beat.beats >= 3, timeout=15, what="three heartbeats")
    assert prefect_api.flow_run(run_id)["heartbeat"] > submitted
    assert "update_flow_run_heartbeat" in prefect_api.fields_called()


def test_a_quick_preparation_sends_no_heartbeat(prefect_api, run_id) -> None:
    """A container without extras is ready at once: no request. A slow one beats first
    after a few seconds (Lazarus' clock has run since Submitted), then every period."""
    prefect_api.clear_requests()
    role = FlowRunRole(run_id, prefect_api.url, heartbeat_interval=30)
    with Heartbeat(role) as beat:
        pass
    assert (beat.first, beat.beats) == (Heartbeat.FIRST_BEAT_SECONDS, 0)
    assert "update_flow_run_heartbeat" not in prefect_api.fields_called()
    with Heartbeat(role, first=0.5) as beat:
        time.sleep(0.3)
        assert beat.beats == 0
        prefect_api.wait_until(lambda: beat.beats >= 1, timeout=15, what="the first heartbeat")
        time.sleep(1)
        assert beat.beats == 1  # the next one a period (30 s) later


def test_a_stop_signal_during_the_run_ends_it_failed_with_the_signal(
    prefect_api, prefect_api_env, prefect_api_tenant, run_id
) -> None:
    env = {**prefect_api_env(tenant_id=prefect_api_tenant), **runner_env(prefect_api, run_id)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "bootstrap.flowrun", "execute", "flow-run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tasks = prefect_api.task_runs(run_id)
            if tasks and tasks[0]["state"] == "Running":
                break
            time.sleep(0.2)
        assert prefect_api.flow_run(run_id)["state"] == "Running", runner.poll()
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        runner.kill()
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Failed", runner.stdout.read()
    assert run["serialized_state"]["message"].startswith(
        "the flow-run container was stopped by SIGTERM"
    )
