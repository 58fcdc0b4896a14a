"""``prefect-agent-bootstrap doctor`` against the API double, as a process: a healthy stand
exits 0; a Late run whose labels no agent has is named with both label sets; a run stuck
in Submitted is named with what to look at; an unreachable server exits 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prefect.run_configs import DockerRun

from prefect_api_double.registration import create_flow_run, load_flow, register_flow

FLOWS = Path(__file__).resolve().parents[3] / "testbed" / "flows"
REGISTER_AGENT = "mutation($input: register_agent_input!) { register_agent(input: $input) { id } }"
POLL = (
    "mutation($input: get_runs_in_queue_input!) { get_runs_in_queue(input: $input) "
    "{ flow_run_ids } }"
)


def doctor(prefect_api_env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", "doctor", *args],
        env=prefect_api_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def stand(prefect_api):
    """A tenant, a project, a flow, and an agent labelled lume, docker that just polled."""
    tenant = prefect_api.create_tenant("LUME", "lume")
    prefect_api.create_project("lume", tenant)
    agent = prefect_api.execute(
        REGISTER_AGENT,
        {"input": {"tenant_id": tenant, "name": "lume-agent", "type": "DockerAgent",
                   "labels": ["lume", "docker"]}},
        headers={"X-PREFECT-CORE-VERSION": "1.2.4"},
    )["data"]["register_agent"]["id"]  # fmt: skip
    prefect_api.execute(
        POLL,
        {"input": {"tenant_id": tenant, "labels": ["lume", "docker"]}},
        headers={"X-PREFECT-AGENT-ID": agent},
    )
    flow = load_flow(str(FLOWS / "squares.py"))
    flow.run_config = DockerRun(image="prefect-agent:prod", labels=["lume"])
    flow_id = register_flow(flow, prefect_api.url, "lume", tenant_id=tenant, build=False)
    return tenant, flow_id


def test_a_healthy_stand_exits_0(prefect_api, prefect_api_env, stand) -> None:
    result = doctor(prefect_api_env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"ok      server {prefect_api.url} answers" in out
    assert "ok      tenant LUME (lume): projects lume" in out
    assert "agent lume-agent (DockerAgent, prefect 1.2.4) labels [docker, lume]" in out
    assert "prefect versions: agents 1.2.4; flows registered with 1.2.4" in out
    assert out.rstrip().endswith("no problem found")


def test_a_late_run_names_its_labels_and_the_agents(prefect_api, prefect_api_env, stand) -> None:
    tenant, flow_id = stand
    run = create_flow_run(prefect_api.url, flow_id=flow_id, tenant_id=tenant, labels=["gpu"])
    result = doctor(prefect_api_env, "--late-after", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    head = next(line for line in lines if run in line)
    assert head.startswith("PROBLEM ")
    assert "Late" in head
    assert "no running agent has its labels" in head
    assert "          run labels:   [gpu]" in lines
    assert "          agent lume-agent: [docker, lume] lacks gpu" in lines


def test_a_run_stuck_in_submitted_is_named(prefect_api, prefect_api_env, stand) -> None:
    tenant, flow_id = stand
    run = create_flow_run(prefect_api.url, flow_id=flow_id, tenant_id=tenant)
    prefect_api.execute(
        "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
        "{ states { id } } }",
        {"input": {"states": [{"flow_run_id": run, "version": 1,
                               "state": {"type": "Submitted", "message": "deployed"}}]}},
    )  # fmt: skip
    result = doctor(prefect_api_env, "--submitted-after", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    head = next(line for line in result.stdout.splitlines() if run in line)
    assert "stuck in Submitted since" in head
    assert f"docker logs prefect-flow-run-{run}" in result.stdout
    assert "Lazarus reschedules it after 10 minutes" in result.stdout


def test_an_unreachable_server_exits_3(prefect_api_env) -> None:
    env = prefect_api_env()
    env["PREFECT__CLOUD__API"] = "http://127.0.0.1:9/graphql"
    result = subprocess.run(
        [sys.executable, "-m", "bootstrap", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "127.0.0.1:9" in result.stderr


def test_an_agent_of_another_tenant_is_named_as_the_reason(
    prefect_api, prefect_api_env, stand
) -> None:
    """The agent has the run's labels but polls another tenant: Late for ever."""
    assert stand  # the agent of tenant LUME, labelled lume, docker
    other = prefect_api.create_tenant("Other", "other")
    prefect_api.create_project("elsewhere", other)
    flow = load_flow(str(FLOWS / "squares.py"))
    flow.run_config = DockerRun(image="prefect-agent:prod", labels=["lume"])
    flow_id = register_flow(flow, prefect_api.url, "elsewhere", tenant_id=other, build=False)
    run = create_flow_run(prefect_api.url, flow_id=flow_id, tenant_id=other, labels=["lume"])
    result = doctor(prefect_api_env, "--late-after", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    head = next(line for line in result.stdout.splitlines() if run in line)
    assert "no agent of its tenant has its labels" in head
    assert "lume-agent (tenant LUME) have its labels but poll another tenant" in result.stdout


def test_a_run_an_agent_could_take_then_one_of_another_tenant(
    prefect_api, prefect_api_env, stand
) -> None:
    """Both explained, each with its own reason (the first once broke the second's)."""
    tenant, lume_flow = stand
    first = create_flow_run(prefect_api.url, flow_id=lume_flow, tenant_id=tenant, labels=["lume"])
    other = prefect_api.create_tenant("Other", "other")
    prefect_api.create_project("elsewhere", other)
    flow = load_flow(str(FLOWS / "squares.py"))
    flow.run_config = DockerRun(image="prefect-agent:prod", labels=["lume"])
    flow_id = register_flow(flow, prefect_api.url, "elsewhere", tenant_id=other, build=False)
    runs = [
        create_flow_run(prefect_api.url, flow_id=flow_id, tenant_id=other, labels=["lume"])
        for _ in range(2)
    ]
    result = doctor(prefect_api_env, "--late-after", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    taken = next(line for line in lines if first in line)
    assert taken.startswith("note")  # lume-agent matches: at its limit, or behind
    for run in runs:
        head = next(line for line in lines if run in line)
        assert "no agent of its tenant has its labels" in head
