"""An agent that knows when it is stuck, in the image: liveness from the poll loop, and the
outage limit ending the container so that a restart policy acts.

Short windows and limits are set through the settings, so each case takes seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from testbed.docker import SocketProxy, wait_for_log
from testbed.flow_runs import AGENT_READY
from tests.helpers.containers import assert_no_traceback
from tests.helpers.figures import figure

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

FAST = {
    "BOOTSTRAP_AGENT_MAX_POLL_INTERVAL": "0.5",
    "BOOTSTRAP_AGENT_LIVENESS_MULTIPLE": "10",  # unhealthy after 5 s without a good poll
}


def healthcheck(container) -> tuple:
    code, output = container.exec_run(["prefect-agent-bootstrap", "healthcheck"])
    return code, output.decode().strip()


def wait_until_unhealthy(container, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, reason = healthcheck(container)
        if code != 0:
            return reason
        assert time.monotonic() < deadline, f"still healthy after {timeout} s: {reason}"
        time.sleep(0.5)


def test_a_server_that_hangs_the_poll_makes_the_agent_unhealthy(docker_agent_stand) -> None:
    stand = docker_agent_stand
    agent = stand.start_agent(**FAST)
    assert healthcheck(agent)[0] == 0
    stand.api.stall("get_runs_in_queue")  # `hello` and the rest still answer
    hung = time.monotonic()
    reason = wait_until_unhealthy(agent, timeout=30)
    figure("poll hung -> health check unhealthy (window 5 s)", time.monotonic() - hung)
    assert "HTTP 503" in reason
    assert "has not returned for" in reason or "has succeeded for" in reason
    port = stand.port
    assert requests.get(f"http://127.0.0.1:{port}/api/ready", timeout=5).status_code == 503
    stand.api.release()
    deadline = time.monotonic() + 30
    while healthcheck(agent)[0] != 0:
        assert time.monotonic() < deadline, "not healthy again after the server answered"
        time.sleep(0.5)


def test_an_api_outage_beyond_the_limit_ends_the_container_with_exit_3(docker_agent_stand):
    stand = docker_agent_stand
    agent = stand.start_agent(BOOTSTRAP_AGENT_API_OUTAGE_LIMIT="8", **FAST)
    stand.api.stop()
    down = time.monotonic()
    result = agent.wait(timeout=120)
    figure("API down -> container exited (limit 8 s)", time.monotonic() - down)
    assert result["StatusCode"] == 3
    assert time.monotonic() - down < 8 + 10
    logs = stand.agent_logs()
    assert "the Prefect API has not answered a poll for" in logs
    assert "(outage limit 8 s" in logs
    assert_no_traceback(logs)


def test_an_api_outage_within_the_limit_is_survived(docker_agent_stand) -> None:
    stand = docker_agent_stand
    agent = stand.start_agent(BOOTSTRAP_AGENT_API_OUTAGE_LIMIT="30", **FAST)
    stand.api.restart(down_for=10)  # unhealthy meanwhile, but below the limit
    polls = len(stand.api.requests_for("get_runs_in_queue"))
    stand.api.wait_until(
        lambda: len(stand.api.requests_for("get_runs_in_queue")) > polls + 2, timeout=60
    )
    deadline = time.monotonic() + 30
    while healthcheck(agent)[0] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    agent.reload()
    assert agent.status == "running"
    assert stand.agent_logs().count("Waiting for flow runs...") == 1  # the same agent


def test_a_lost_engine_beyond_the_limit_ends_the_container_with_exit_5(
    docker_agent_stand, tmp_path: Path
) -> None:
    socket_dir = tmp_path / "engine"
    socket_dir.mkdir()
    socket_dir.chmod(0o755)
    proxy = SocketProxy(socket_dir / "docker.sock").chown(0, 4242, 0o660)
    try:
        agent = docker_agent_stand.start_agent(
            volumes={str(socket_dir): {"bind": "/var/run/engine", "mode": "rw"}},
            group_add=["4242"],
            DOCKER_HOST="unix:///var/run/engine/docker.sock",
            BOOTSTRAP_AGENT_API_OUTAGE_LIMIT="8",
            **FAST,
        )
        wait_for_log(agent, AGENT_READY)
        proxy.close()
        gone = time.monotonic()
        result = agent.wait(timeout=120)
    finally:
        proxy.close()
    figure("engine gone -> container exited (limit 8 s)", time.monotonic() - gone)
    assert result["StatusCode"] == 5
    logs = docker_agent_stand.agent_logs()
    assert "the Docker engine at unix:///var/run/engine/docker.sock has not answered for" in logs
    assert_no_traceback(logs)
