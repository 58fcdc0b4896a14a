"""The launcher as a process: prefect's local agent, with the hooks, against the API double.

Real parts: ``python -m bootstrap.agent agent local start ...`` (prefect 1.2.4's own CLI
and agent), its health server, its metrics, its logs. The double stands in for the server
and hangs or goes away on cue.
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import pytest
import requests

from bootstrap.agent.config import CONFIG_ENV, LauncherConfig
from prefect_api_double import PrefectApiDouble
from testbed.net import free_port
from tests.fixtures.prefect_api import AgentProcess

FAST = LauncherConfig(
    agent_type="local",
    max_poll_interval=0.5,
    liveness_window=3.0,
    outage_limit=0.0,
)


class Launched:
    def __init__(self, process: AgentProcess, port: int, metrics_port: Optional[int]) -> None:
        self.process = process
        self.port = port
        self.metrics_port = metrics_port

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_http(self, path: str, status: int, timeout: float = 30) -> requests.Response:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get(path)
                if last.status_code == status:
                    return last
            except requests.ConnectionError:
                pass
            if self.process.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"{path} did not answer {status} (last: {last and last.status_code}):\n"
            f"{self.process.output()[-3000:]}"
        )


@pytest.fixture
def launch(prefect_api: PrefectApiDouble, prefect_api_tenant: str, prefect_api_env, tmp_path: Path):
    started: List[AgentProcess] = []

    def start(config: LauncherConfig = FAST, port: Optional[int] = None, **env: str) -> Launched:
        port = port or free_port()
        argv = [sys.executable, "-m", "bootstrap.agent", "agent", "local", "start"]
        argv += ["--api", prefect_api.url, "--agent-address", f"http://127.0.0.1:{port}"]
        argv += ["--no-hostname-label"]
        environment = prefect_api_env(prefect_api_tenant, **{CONFIG_ENV: config.to_env(), **env})
        process = AgentProcess(argv, environment, tmp_path / f"launcher-{len(started)}.log")
        started.append(process)
        return Launched(process, port, config.metrics_port)

    yield start
    for process in started:
        process.stop()


def poll_times(api: PrefectApiDouble) -> List[float]:
    return [request.time for request in api.requests_for("get_runs_in_queue")]


def test_an_idle_agent_polls_at_least_every_ceiling(launch, prefect_api) -> None:
    agent = launch()
    agent.wait_http("/api/ready", 200)
    start = len(poll_times(prefect_api)) + 3  # past prefect's first steps of back-off
    # Uncapped, prefect's back-off reaches 2, 4, 8, then 10 s: 12 polls would take minutes.
    prefect_api.wait_until(lambda: len(poll_times(prefect_api)) >= start + 12, timeout=30)
    times = poll_times(prefect_api)[start:]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The ceiling (0.5 s) plus a poll's round trip, with slack for a loaded host: uncapped,
    # no gap from here on would be under 2 s.
    assert statistics.median(gaps) < 1.0, gaps
    assert max(gaps) < 1.9, gaps


def test_health_and_readiness_answer_with_the_reason(launch) -> None:
    agent = launch()
    ready = agent.wait_http("/api/ready", 200)
    assert ready.json() == {"status": "ok", "reason": "polling"}
    assert agent.get("/api/health").json()["status"] == "ok"


def test_a_hung_poll_makes_the_agent_unhealthy_then_it_recovers(launch, prefect_api) -> None:
    agent = launch()
    agent.wait_http("/api/ready", 200)
    prefect_api.stall("get_runs_in_queue")
    stalled = time.monotonic()
    failing = agent.wait_http("/api/health", 503, timeout=20)
    assert "has not returned" in failing.json()["reason"] or "succeeded" in failing.json()["reason"]
    assert time.monotonic() - stalled < FAST.liveness_window + 3
    prefect_api.release()
    agent.wait_http("/api/health", 200, timeout=30)


def test_an_outage_longer_than_the_limit_stops_the_agent_with_exit_3(launch, prefect_api) -> None:
    agent = launch(replace(FAST, outage_limit=4.0))
    agent.wait_http("/api/ready", 200)
    prefect_api.stop()
    down = time.monotonic()
    code = agent.process.wait(timeout=60)
    assert code == 3, agent.process.output()[-3000:]
    assert time.monotonic() - down < 4.0 + 8  # the limit, plus the stop
    assert "has not answered a poll for" in agent.process.output()
    assert "stopping so that the container is restarted" in agent.process.output()


def test_an_outage_shorter_than_the_limit_is_ridden_out(launch, prefect_api) -> None:
    agent = launch(replace(FAST, outage_limit=30.0))
    agent.wait_http("/api/ready", 200)
    prefect_api.restart(down_for=5)
    polls = len(poll_times(prefect_api))
    prefect_api.wait_until(lambda: len(poll_times(prefect_api)) > polls + 2, timeout=40)
    agent.wait_http("/api/ready", 200, timeout=30)
    assert agent.process.proc.poll() is None


def test_a_taken_health_port_stops_the_agent_with_a_clear_message(launch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        agent = launch(port=taken.getsockname()[1])
        code = agent.process.wait(timeout=60)
    output = agent.process.output()
    assert code == 5, output[-3000:]
    assert "the agent's health server cannot listen on" in output
    assert "another agent on this host?" in output
    assert "Traceback" not in output


def test_metrics_count_what_the_api_saw(launch, prefect_api) -> None:
    metrics_port = free_port()
    agent = launch(replace(FAST, metrics_port=metrics_port, startup_seconds={"wait": 0.25}))
    agent.wait_http("/api/ready", 200)
    time.sleep(2)
    before = len(poll_times(prefect_api))
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    after = len(poll_times(prefect_api))
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    polls = samples['prefect_agent_polls_total{outcome="success"}']
    # Every poll counted reached the API before the scrape; all but one in flight had
    # ended before it.
    assert polls > 0
    assert before - 1 <= polls <= after, (before, polls, after)
    assert samples['prefect_agent_polls_total{outcome="failure"}'] == 0
    assert abs(samples["prefect_agent_last_successful_poll_timestamp_seconds"] - time.time()) < 5
    assert samples['prefect_agent_bootstrap_step_seconds{step="wait"}'] == 0.25
    assert samples["prefect_agent_flow_runs_submitted_total"] == 0


def test_json_logs_are_one_object_per_line(launch) -> None:
    agent = launch(replace(FAST, log_format="json"))
    agent.wait_http("/api/ready", 200)
    lines = [line for line in agent.process.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, prefect's banner left out
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
    assert any(r["message"] == "Waiting for flow runs..." for r in records)


def test_pokes_are_rate_limited(launch, prefect_api) -> None:
    agent = launch(replace(FAST, max_poll_interval=10.0, liveness_window=600))
    agent.wait_http("/api/ready", 200)
    time.sleep(16)  # prefect's back-off has reached 10 s
    before = len(poll_times(prefect_api))
    pokes = 0
    flood_started = time.monotonic()
    while time.monotonic() - flood_started < 3:
        agent.get("/api/poke")
        pokes += 1
    time.sleep(1.2)
    extra = len(poll_times(prefect_api)) - before
    # About one poll per second, not one per poke: the pokes of 3 s (plus the last one's
    # request in flight) wake at most 0, 1, 2, 3 and 4 s after the first; one 10 s
    # back-off poll may fall inside the window too.
    assert pokes >= 12, pokes  # twice the bound: unlimited pokes would fail it
    assert 1 <= extra <= 6, (extra, pokes)
