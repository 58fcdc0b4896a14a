"""Background checks of the running agent: the Docker engine, and the outage limit.

:class:`EngineCheck` pings a Docker agent's engine every few seconds (prefect's own
heartbeat does so once a minute, and stops for good after six failures). :class:`Watchdog`
stops the agent once the API or the engine has failed for longer than the outage limit:
SIGINT first (prefect's clean shutdown), then, if a hung request keeps the agent from
noticing, an immediate exit. Either way the launcher exits non-zero with the reason, so
``docker run --restart``, compose ``restart:`` and Kubernetes restart it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable, Optional

from bootstrap.agent.config import LauncherConfig
from bootstrap.agent.liveness import AgentHealth, Stop, liveness, outage
from bootstrap.agent.metrics import Metrics
from bootstrap.util.engine import ping

ENGINE_CHECK_SECONDS = 5.0
WATCHDOG_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0

logger = logging.getLogger("bootstrap")


class EngineCheck(threading.Thread):
    def __init__(self, url: str, health: AgentHealth, metrics: Metrics) -> None:
        super().__init__(name="engine-check", daemon=True)
        self.url = url
        self.health = health
        self.metrics = metrics
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            problem = ping(self.url, timeout=ENGINE_CHECK_SECONDS)
            if problem is None:
                if self.health.snapshot().engine_failing_since is not None:
                    logger.info("The Docker engine at %s answers again", self.url)
                self.health.engine_answered()
                self.metrics.engine_up.set(1)
            else:
                if self.health.snapshot().engine_failing_since is None:
                    logger.warning("The Docker engine at %s does not answer: %s", self.url, problem)
                self.health.engine_failed(problem)
                self.metrics.engine_up.set(0)
            self.stopped.wait(ENGINE_CHECK_SECONDS)


class Watchdog(threading.Thread):
    def __init__(
        self,
        config: LauncherConfig,
        health: AgentHealth,
        metrics: Metrics,
        exit_now: Callable[[int], None] = os._exit,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.config = config
        self.health = health
        self.metrics = metrics
        self.exit_now = exit_now
        self.stop: Optional[Stop] = None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(WATCHDOG_SECONDS):
            now = time.monotonic()
            state = self.health.snapshot()
            self.metrics.healthy.set(1 if liveness(state, now, self.config).ok else 0)
            stop = outage(state, now, self.config)
            if stop is not None:
                self._stop_agent(stop)
                return

    def interrupt(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # prefect's agent stops cleanly on SIGINT

    def _stop_agent(self, stop: Stop) -> None:
        self.stop = stop
        logger.error("%s", stop.reason)
        self.interrupt()
        if not self.stopped.wait(STOP_GRACE_SECONDS):
            logger.error("The agent did not stop within %g s: exiting", STOP_GRACE_SECONDS)
            for handler in logging.getLogger().handlers + logger.handlers:
                handler.flush()
            self.exit_now(stop.exit_code)
