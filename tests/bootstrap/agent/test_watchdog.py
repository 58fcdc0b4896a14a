"""bootstrap.agent.watchdog: the Docker engine check and the outage limit."""

from __future__ import annotations

import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import List

import pytest

from bootstrap.agent import watchdog as watchdog_module
from bootstrap.agent.config import LauncherConfig
from bootstrap.agent.liveness import AgentHealth, liveness
from bootstrap.agent.metrics import Metrics
from bootstrap.agent.watchdog import EngineCheck, Watchdog


class _Engine(BaseHTTPRequestHandler):
    """Just enough of the Docker engine's API for docker.APIClient(...).ping()."""

    def do_GET(self) -> None:
        body = b'{"ApiVersion": "1.41"}' if self.path.endswith("/version") else b"OK"
        self.send_response(200 if self.path.endswith(("/version", "/_ping")) else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:  # a Unix socket has no client address
        return "engine"

    def log_message(self, *args) -> None:
        pass


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_an_agent_is_alive_only_while_its_engine_answers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(watchdog_module, "ENGINE_CHECK_SECONDS", 0.2)
    socket_path = tmp_path / "docker.sock"
    config = LauncherConfig(liveness_window=60, engine_url=f"unix://{socket_path}")
    health = AgentHealth()
    health.registered()
    health.poll_succeeded()
    metrics = Metrics("docker", {})
    metrics.engine_up.set(1)  # so that the check's 0 is seen to be the check's
    check = EngineCheck(config.engine_url, health, metrics)
    check.start()
    try:
        # the health first, then the metric: wait for both
        wait_for(
            lambda: (
                health.snapshot().engine_failing_since is not None
                and metrics.engine_up._value.get() == 0
            )
        )
        verdict = liveness(health.snapshot(), time.monotonic(), config)
        assert not verdict.ok
        assert "the Docker engine has not answered" in verdict.reason
        assert metrics.engine_up._value.get() == 0

        engine = socketserver.ThreadingUnixStreamServer(str(socket_path), _Engine)
        threading.Thread(target=engine.serve_forever, daemon=True).start()
        try:
            wait_for(
                lambda: (
                    health.snapshot().engine_failing_since is None
                    and metrics.engine_up._value.get() == 1
                )
            )
            assert liveness(health.snapshot(), time.monotonic(), config).ok
            assert metrics.engine_up._value.get() == 1
        finally:
            engine.shutdown()
            engine.server_close()
    finally:
        check.stopped.set()


@pytest.mark.parametrize("stops_cleanly", [True, False], ids=["clean-stop", "hung-agent"])
def test_an_outage_beyond_the_limit_interrupts_then_exits(monkeypatch, stops_cleanly) -> None:
    monkeypatch.setattr(watchdog_module, "WATCHDOG_SECONDS", 0.05)
    monkeypatch.setattr(watchdog_module, "STOP_GRACE_SECONDS", 0.5)
    health = AgentHealth()
    health.registered()
    interrupted: List[bool] = []
    exits: List[int] = []
    dog = Watchdog(LauncherConfig(outage_limit=0.3), health, Metrics("local", {}), exits.append)

    def interrupt() -> None:  # instead of SIGINT to this test process
        interrupted.append(True)
        if stops_cleanly:
            dog.stopped.set()  # what the launcher does once prefect's agent has stopped

    monkeypatch.setattr(dog, "interrupt", interrupt)
    dog.start()
    dog.join(timeout=10)
    assert interrupted == [True]
    assert dog.stop is not None
    assert dog.stop.exit_code == 3
    assert exits == ([] if stops_cleanly else [3])
