"""The image's health check: find the agent, probe its own health address."""

from __future__ import annotations

import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bootstrap.healthcheck import agent_engine_url, agent_health_url, check, main_process

AGENT = ["/opt/prefect/bin/python", "/opt/prefect/bin/prefect", "agent", "docker", "start"]


@pytest.mark.parametrize(
    ("cmdline", "url"),
    [
        ([*AGENT, "--agent-address", "http://:8080"], "http://127.0.0.1:8080/api/health"),
        ([*AGENT, "--agent-address=http://0.0.0.0:9000"], "http://127.0.0.1:9000/api/health"),
        ([*AGENT, "--agent-address", "http://10.1.2.3:81"], "http://10.1.2.3:81/api/health"),
        ([*AGENT, "--label", "x"], ""),  # an agent without a health server
        (["prefect", "execute", "flow-run"], None),
        (["python", "-c", "print(1)"], None),
    ],
)
def test_agent_health_url(cmdline, url) -> None:
    assert agent_health_url(cmdline) == url


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server():
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_healthy_agent(health_server) -> None:
    _, port = health_server
    verdict = check([*AGENT, "--agent-address", f"http://:{port}"])
    assert verdict.healthy
    assert verdict.reason.endswith(": ok")


def test_an_agent_answering_an_error_is_unhealthy(health_server) -> None:
    handler, port = health_server
    handler.status = 503
    verdict = check([*AGENT, "--agent-address", f"http://:{port}"])
    assert not verdict.healthy
    assert "HTTP 503" in verdict.reason


def test_an_agent_not_listening_is_unhealthy() -> None:
    assert not check([*AGENT, "--agent-address", "http://127.0.0.1:1"]).healthy


def test_the_bootstrap_still_starting_is_not_yet_healthy() -> None:
    verdict = check(["/opt/prefect/bin/python", "/opt/prefect/bin/prefect-agent-bootstrap", "run"])
    assert not verdict.healthy
    assert "not started yet" in verdict.reason


def test_a_flow_run_container_has_nothing_to_check() -> None:
    assert check(["/opt/prefect/bin/python", "/opt/prefect/bin/prefect", "execute"]).healthy


def fake_process(proc: Path, pid: int, ppid: int, cmdline: list) -> None:
    directory = proc / str(pid)
    directory.mkdir()
    (directory / "stat").write_text(f"{pid} (some (odd) name) S {ppid} {pid} {pid} 0")
    (directory / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in cmdline) + b"\0")


def test_main_process_is_tinis_first_child(tmp_path: Path) -> None:
    fake_process(tmp_path, 1, 0, ["tini", "-g", "--", "prefect-agent-entrypoint"])
    fake_process(tmp_path, 7, 1, AGENT)
    fake_process(tmp_path, 30, 1, ["zombie-reparented"])
    fake_process(tmp_path, 31, 7, ["flow-run"])
    assert main_process(tmp_path) == AGENT


def test_main_process_without_an_init_is_pid_1(tmp_path: Path) -> None:
    fake_process(tmp_path, 1, 0, AGENT)
    assert main_process(tmp_path) == AGENT


def test_agent_engine_url_of_a_docker_agent_only() -> None:
    engine = "unix:///var/run/engine/docker.sock"
    assert agent_engine_url([*AGENT, "--base-url", engine]) == engine
    assert agent_engine_url([*AGENT, f"--base-url={engine}"]) == engine
    assert agent_engine_url([*AGENT, "--label", "x"]) is None
    local = ["/opt/prefect/bin/prefect", "agent", "local", "start", "--base-url", engine]
    assert agent_engine_url(local) is None


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


def test_a_docker_agent_is_healthy_only_while_its_engine_answers(
    health_server, tmp_path: Path
) -> None:
    _, port = health_server
    socket_path = tmp_path / "docker.sock"
    agent = [*AGENT, "--agent-address", f"http://:{port}", "--base-url", f"unix://{socket_path}"]
    verdict = check(agent)
    assert not verdict.healthy
    assert f"ok, but the Docker engine at unix://{socket_path}: " in verdict.reason

    engine = socketserver.ThreadingUnixStreamServer(str(socket_path), _Engine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        assert check(agent).healthy
    finally:
        engine.shutdown()
        engine.server_close()
