"""End to end: the agent in the image runs a flow in a sibling container, via the socket.

Real parts: the Docker engine, the image built from the Dockerfile (agent and flow-run
container), `prefect agent docker start`, `prefect execute flow-run`, a real flow. The one
stand-in is the Prefect Server API (prefect_api_double), which cannot run here.
"""

from __future__ import annotations

import time

import pytest
import requests

from testbed.flow_runs import flow_run_containers, logs_saying, sleeping_container, wait_final
from testbed.net import free_port

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def test_a_flow_run_goes_from_scheduled_to_success_in_a_sibling_container(
    docker_agent_stand, docker_client
) -> None:
    stand = docker_agent_stand
    stand.start_agent()
    api = stand.api
    (agent,) = api.agents()
    assert sorted(agent["labels"]) == ["docker", "lume"]
    assert [p["name"] for p in api.projects(stand.tenant_id)] == ["lume"]

    flow_id = stand.register("squares.py")
    run_id = stand.run(flow_id, parameters={"n": 4})
    seen_container = []

    def submitted_with_container():
        seen_container.extend(flow_run_containers(docker_client, run_id))
        return api.flow_run(run_id)["state"] != "Scheduled" and seen_container

    api.wait_until(submitted_with_container, timeout=60, what="a flow-run container")
    run = api.wait_for_flow_run_state(run_id, timeout=180)
    assert run["state"] == "Success", stand.agent_logs()

    states = [state["state"] for state in api.flow_run_states(run_id)]
    assert states[:3] == ["Scheduled", "Submitted", "Running"]
    assert states[-1] == "Success"
    task_runs = api.task_runs(run_id)
    by_slug = {}
    for task_run in task_runs:
        by_slug.setdefault(task_run["task_slug"], []).append(task_run)
    mapped = {r["map_index"]: r["state"] for r in by_slug.pop("square-1")}
    assert mapped == {-1: "Mapped", 0: "Success", 1: "Success", 2: "Success", 3: "Success"}
    assert {task_run["state"] for runs in by_slug.values() for task_run in runs} == {"Success"}
    assert set(by_slug) == {"n", "numbers-1", "total-1"}

    # The flow runner sends logs in batches, the last one as it exits: just after Success.
    logs_saying(api, run_id, "e2e total=14")
    # The flow-run container ran the flow, then the agent removed it (a success).
    api.wait_until(
        lambda: not flow_run_containers(docker_client, run_id), timeout=30, what="removal"
    )
    assert seen_container
    assert f"Completed deployment of flow run {run_id}" in stand.agent_logs()


def test_unmatched_labels_stay_scheduled_and_failures_are_reported(
    docker_agent_stand, docker_client
) -> None:
    stand = docker_agent_stand
    stand.start_agent()
    api = stand.api

    gpu_flow = stand.register("squares.py", labels=["gpu"])
    unmatched = stand.run(gpu_flow)
    failing = stand.run(stand.register("explodes.py"))

    run = api.wait_for_flow_run_state(failing, timeout=180)
    assert run["state"] == "Failed", stand.agent_logs()
    failed_tasks = [t for t in api.task_runs(failing) if t["state"] == "Failed"]
    assert [t["task_slug"] for t in failed_tasks] == ["explode-1"]
    assert "e2e boom: 42" in failed_tasks[0]["serialized_state"]["message"]

    # The agent carries on: it keeps polling, stays healthy, never takes the gpu run.
    polls = len(api.requests_for("get_runs_in_queue"))
    api.wait_until(lambda: len(api.requests_for("get_runs_in_queue")) > polls + 1, timeout=30)
    health = requests.get(f"http://127.0.0.1:{stand.port}/api/health", timeout=5)
    assert health.status_code == 200
    assert api.flow_run(unmatched)["state"] == "Scheduled"
    assert flow_run_containers(docker_client, unmatched) == []
    assert unmatched not in stand.agent_logs()


def test_flow_run_latency_is_recorded(docker_agent_stand) -> None:
    """Creation -> Submitted -> Success for a small flow, as figures in the test report."""
    stand = docker_agent_stand
    stand.start_agent()
    flow_id = stand.register("squares.py")
    created = time.monotonic()
    run_id = stand.run(flow_id, parameters={"n": 2})
    stand.api.wait_for_flow_run_state(run_id, ("Submitted", "Running", "Success"), timeout=60)
    submitted = time.monotonic()
    assert stand.api.wait_for_flow_run_state(run_id, timeout=180)["state"] == "Success"
    done = time.monotonic()
    print(
        f"flow-run latency: submitted {submitted - created:.2f} s, success {done - created:.2f} s"
    )


def scrape(port: int) -> dict:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_metrics_match_what_the_api_recorded(docker_agent_stand) -> None:
    stand = docker_agent_stand
    metrics_port = free_port()
    stand.start_agent(BOOTSTRAP_METRICS_PORT=str(metrics_port))
    api = stand.api
    runs = [
        stand.run(stand.register("squares.py"), parameters={"n": 2}),
        stand.run(stand.register("explodes.py")),
    ]
    for run in runs:
        assert api.wait_for_flow_run_state(run, timeout=180)["state"] in ("Success", "Failed")
    samples = scrape(metrics_port)
    polls = len(api.requests_for("get_runs_in_queue"))
    # Both runs were deployed (the second failed inside its container, not in the agent).
    assert samples["prefect_agent_flow_runs_submitted_total"] == 2
    assert samples["prefect_agent_flow_run_deploy_failures_total"] == 0
    assert samples["prefect_agent_flow_run_submission_seconds_count"] == 2
    succeeded = samples['prefect_agent_polls_total{outcome="success"}']
    assert succeeded <= polls <= succeeded + 1  # the API saw every poll the agent counted
    assert samples["prefect_agent_docker_engine_up"] == 1
    assert samples["prefect_agent_healthy"] == 1
    for step in ("extras", "wait", "tenant", "projects", "preflight"):
        assert f'prefect_agent_bootstrap_step_seconds{{step="{step}"}}' in samples


def test_a_flow_run_container_beats_from_the_images_small_process(
    docker_agent_stand, docker_client
) -> None:
    """Not from prefect's ``python -m prefect heartbeat flow-run``, which imports all of
    prefect for the run's whole life (bootstrap.flowrun.heartbeat)."""
    stand = docker_agent_stand
    stand.start_agent()
    run_id = stand.run(stand.register("sleeps.py"), parameters={"seconds": 20})
    commands = [p[-1] for p in sleeping_container(docker_client, run_id).top()["Processes"]]
    beating = [c.split()[:3] for c in commands if "heartbeat" in c]
    assert beating == [["/opt/prefect/bin/python", "-m", "bootstrap.flowrun.heartbeat"]], commands
    assert wait_final(stand.api, [run_id], timeout=120) == {run_id: "Success"}
