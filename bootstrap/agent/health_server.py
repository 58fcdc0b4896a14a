"""The agent's health server, in place of prefect's (which answers ``{}`` for as long as its
thread lives): liveness at ``/api/health``, readiness at ``/api/ready``, and ``/api/poke``
(wake the agent to poll now) at most once per ``poke_interval``.

The port is bound before the agent polls: an address in use stops the agent with a clear
message instead of a traceback in a thread while something else answers its checks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Optional
from urllib.parse import urlparse

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from bootstrap.agent.config import LauncherConfig
from bootstrap.agent.liveness import AgentHealth, liveness, readiness


class AddressInUse(Exception):
    """The health server's port is taken (often: another agent on this host)."""


class _Check(web.RequestHandler):
    def initialize(self, health: AgentHealth, config: LauncherConfig, check) -> None:
        self.health = health
        self.config = config
        self.check = check

    def get(self) -> None:
        verdict = self.check(self.health.snapshot(), time.monotonic(), self.config)
        self.set_status(200 if verdict.ok else 503)
        self.write({"status": "ok" if verdict.ok else "failing", "reason": verdict.reason})


class _Poke(web.RequestHandler):
    """Wake the poll loop, coalescing pokes that come faster than ``interval``."""

    def initialize(self, wake: threading.Event, interval: float, state: dict) -> None:
        self.wake = wake
        self.interval = interval
        self.state = state

    def get(self) -> None:
        now = time.monotonic()
        due = self.state.get("last", -self.interval) + self.interval
        if now >= due:
            self.state["last"] = now
            self.wake.set()
        elif not self.state.get("pending"):
            # Too soon after the last poll we caused: one more, when it is due.
            self.state["pending"] = True

            def later() -> None:
                self.state["pending"] = False
                self.state["last"] = time.monotonic()
                self.wake.set()

            IOLoop.current().call_later(due - now, later)
        self.write({})


def application(health: AgentHealth, config: LauncherConfig, wake: threading.Event):
    checks = {"health": health, "config": config}
    return web.Application(
        [
            ("/api/health", _Check, {**checks, "check": liveness}),
            ("/api/ready", _Check, {**checks, "check": readiness}),
            ("/api/poke", _Poke, {"wake": wake, "interval": config.poke_interval, "state": {}}),
        ],
        # No access log: probes come every few seconds, and tornado's lines (a 503 while
        # the agent starts) would bypass the bootstrap's format (plain text in JSON logs).
        log_function=lambda handler: None,
    )


def start(agent: Any, config: LauncherConfig, health: AgentHealth) -> None:
    """Bind the agent's address now, then serve it from a thread (as prefect does)."""
    from prefect.agent.agent import AGENT_WAKE_EVENT

    parsed = urlparse(agent.agent_address)
    if not parsed.port:
        raise ValueError("Must specify port in agent address")
    host: Optional[str] = parsed.hostname or None
    try:
        sockets = bind_sockets(parsed.port, address=host)
    except OSError as exc:
        raise AddressInUse(
            f"the agent's health server cannot listen on {agent.agent_address} "
            f"({exc.strerror}): another agent on this host? Give each one its own port "
            "(BOOTSTRAP_AGENT_ADDRESS)",
        ) from None
    app = application(health, config, AGENT_WAKE_EVENT)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        server = HTTPServer(app)
        server.add_sockets(sockets)
        agent._api_server = server
        agent._api_server_loop = IOLoop.current()
        ready.set()
        agent._api_server_loop.start()

    agent._api_server_thread = threading.Thread(name="api-server", target=serve, daemon=True)
    agent._api_server_thread.start()
    ready.wait(timeout=5)
    agent.logger.debug(f"Agent API server listening on {agent.agent_address}")
