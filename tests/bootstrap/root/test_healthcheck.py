"""The image's health check: find the agent the bootstrap started, probe its own health server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bootstrap.root.healthcheck import check, main_process
from bootstrap.util import rundir

LAUNCHER = ["/opt/prefect/bin/python", "-m", "bootstrap.agent", "agent", "docker", "start"]


class _Health(BaseHTTPRequestHandler):
    status = 200
    reason = "polling"

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()
        ok = "ok" if self.status == 200 else "failing"
        self.wfile.write(json.dumps({"status": ok, "reason": self.reason}).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server():
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/api/health"
    server.shutdown()
    server.server_close()


def test_a_healthy_agent(health_server) -> None:
    _, url = health_server
    verdict = check((7, LAUNCHER), {"pid": 7, "health_url": url})
    assert verdict.healthy
    assert verdict.reason == f"{url}: ok (polling)"


def test_an_agent_answering_failing_is_unhealthy_with_its_reason(health_server) -> None:
    handler, url = health_server
    handler.status, handler.reason = 503, "no poll for flow runs has succeeded for 61 s"
    verdict = check((7, LAUNCHER), {"pid": 7, "health_url": url})
    assert not verdict.healthy
    assert verdict.reason == f"{url}: HTTP 503: no poll for flow runs has succeeded for 61 s"


def test_an_agent_not_listening_is_unhealthy() -> None:
    agent = {"pid": 7, "health_url": "http://127.0.0.1:1/api/health"}
    assert not check((7, LAUNCHER), agent).healthy


def test_the_agent_file_of_another_process_is_ignored(health_server) -> None:
    """A stale agent.json (an agent that was replaced by another command) proves nothing."""
    _, url = health_server
    flow_run = ["/opt/prefect/bin/python", "/opt/prefect/bin/prefect", "execute", "flow-run"]
    assert check((9, flow_run), {"pid": 7, "health_url": url}).reason.startswith("no agent")


def test_the_agents_command_line_cannot_redirect_the_check() -> None:
    """Options on the agent's command line are not read: a label cannot aim the check."""
    argv = [*LAUNCHER, "--agent-address", "http://127.0.0.1:1", "--label", "--base-url=tcp://x:1"]
    assert check((7, argv), None).healthy  # no agent.json for it: not an agent we started


def test_the_bootstrap_still_starting_is_not_yet_healthy() -> None:
    starting = ["/opt/prefect/bin/python", "/opt/prefect/bin/prefect-agent-bootstrap", "run"]
    verdict = check((7, starting), None)
    assert not verdict.healthy
    assert "not started yet" in verdict.reason


def test_a_flow_run_container_has_nothing_to_check() -> None:
    assert check(
        (1, ["/opt/prefect/bin/python", "/opt/prefect/bin/prefect", "execute"]), None
    ).healthy


def test_the_agent_file_is_read_from_the_run_directory(tmp_path: Path) -> None:
    environ = {rundir.RUN_DIR_ENV: str(tmp_path / "run")}
    assert rundir.read_agent_info(environ) is None
    rundir.write_agent_info({"pid": 7, "health_url": "http://127.0.0.1:8080/api/health"}, environ)
    assert rundir.read_agent_info(environ) == {
        "pid": 7,
        "health_url": "http://127.0.0.1:8080/api/health",
    }
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700


def fake_process(proc: Path, pid: int, ppid: int, cmdline: list) -> None:
    directory = proc / str(pid)
    directory.mkdir()
    (directory / "stat").write_text(f"{pid} (some (odd) name) S {ppid} {pid} {pid} 0")
    (directory / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in cmdline) + b"\0")


def test_main_process_is_tinis_first_child(tmp_path: Path) -> None:
    fake_process(tmp_path, 1, 0, ["tini", "-g", "--", "prefect-agent-entrypoint"])
    fake_process(tmp_path, 7, 1, LAUNCHER)
    fake_process(tmp_path, 30, 1, ["zombie-reparented"])
    fake_process(tmp_path, 31, 7, ["flow-run"])
    assert main_process(tmp_path) == (7, LAUNCHER)


def test_main_process_without_an_init_is_pid_1(tmp_path: Path) -> None:
    fake_process(tmp_path, 1, 0, LAUNCHER)
    assert main_process(tmp_path) == (1, LAUNCHER)
