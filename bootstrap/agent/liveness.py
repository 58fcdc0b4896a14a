"""The agent's health, from what its poll loop and the Docker engine check record.

:class:`AgentHealth` is written by the hooks (every poll) and the engine check, and read
by the health server and the watchdog. The decisions (:func:`liveness`,
:func:`readiness`, :func:`outage`) are pure functions of a snapshot and the time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Optional

from bootstrap.agent.config import LauncherConfig

API_OUTAGE_EXIT = 3  # as when the server does not answer at start
ENGINE_OUTAGE_EXIT = 5  # as when the agent cannot run here


@dataclass(frozen=True)
class Snapshot:
    started: float  # monotonic time the launcher started
    registered: Optional[float] = None  # the agent registered with the API
    poll_started: Optional[float] = None  # a poll in progress since then
    last_poll_ok: Optional[bool] = None
    last_success: Optional[float] = None
    last_failure: Optional[float] = None
    last_error: str = ""
    polls: int = 0
    failures: int = 0
    engine_checked: bool = False
    engine_failing_since: Optional[float] = None
    engine_error: str = ""


class AgentHealth:
    """Thread-safe record of the agent's polls and of its Docker engine."""

    def __init__(self, now: Optional[float] = None) -> None:
        self._lock = threading.Lock()
        self._state = Snapshot(started=time.monotonic() if now is None else now)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._state

    def _update(self, **changes) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def registered(self) -> None:
        self._update(registered=time.monotonic())

    def poll_started(self) -> None:
        self._update(poll_started=time.monotonic())

    def poll_succeeded(self) -> None:
        with self._lock:
            state = self._state
            self._state = replace(
                state,
                poll_started=None,
                last_poll_ok=True,
                last_success=time.monotonic(),
                polls=state.polls + 1,
            )

    def poll_failed(self, error: str) -> None:
        with self._lock:
            state = self._state
            self._state = replace(
                state,
                poll_started=None,
                last_poll_ok=False,
                last_failure=time.monotonic(),
                last_error=error,
                polls=state.polls + 1,
                failures=state.failures + 1,
            )

    def engine_answered(self) -> None:
        self._update(engine_checked=True, engine_failing_since=None, engine_error="")

    def engine_failed(self, error: str) -> None:
        with self._lock:
            state = self._state
            since = state.engine_failing_since or time.monotonic()
            self._state = replace(
                state, engine_checked=True, engine_failing_since=since, engine_error=error
            )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def _api_reference(state: Snapshot) -> float:
    """Since when the API has not answered a poll: the last success, else registration."""
    return state.last_success or state.registered or state.started


def liveness(state: Snapshot, now: float, config: LauncherConfig) -> Verdict:
    """Alive: polls succeed (within the liveness window), no poll hangs, and a Docker
    agent's engine answers."""
    window = config.liveness_window
    if state.poll_started is not None and now - state.poll_started > window:
        return Verdict(
            False, f"a poll for flow runs has not returned for {now - state.poll_started:.0f} s"
        )
    quiet = now - _api_reference(state)
    if quiet > window:
        cause = f" (last error: {state.last_error})" if state.last_error else ""
        return Verdict(False, f"no poll for flow runs has succeeded for {quiet:.0f} s{cause}")
    if state.engine_failing_since is not None:
        return Verdict(
            False,
            f"the Docker engine has not answered for {now - state.engine_failing_since:.0f} s "
            f"({state.engine_error})",
        )
    return Verdict(True, "polling")


def readiness(state: Snapshot, now: float, config: LauncherConfig) -> Verdict:
    """Ready to take flow runs: registered, the last poll succeeded, the engine answers."""
    if state.registered is None:
        return Verdict(False, "not registered with the Prefect API yet")
    if state.last_poll_ok is False:
        return Verdict(False, f"the last poll for flow runs failed ({state.last_error})")
    if state.last_poll_ok is None:
        return Verdict(False, "no poll for flow runs yet")
    if config.engine_url and not state.engine_checked:
        return Verdict(False, "the Docker engine has not been checked yet")
    return liveness(state, now, config)


@dataclass(frozen=True)
class Stop:
    exit_code: int
    reason: str


def outage(state: Snapshot, now: float, config: LauncherConfig) -> Optional[Stop]:
    """An outage longer than the limit: the agent should stop, so that a restart policy acts."""
    limit = config.outage_limit
    if not limit or state.registered is None:
        return None
    quiet = now - _api_reference(state)
    if quiet > limit:
        cause = f"; last error: {state.last_error}" if state.last_error else ""
        return Stop(
            API_OUTAGE_EXIT,
            f"the Prefect API has not answered a poll for {quiet:.0f} s (outage limit "
            f"{limit:g} s{cause}): stopping so that the container is restarted",
        )
    if state.engine_failing_since is not None and now - state.engine_failing_since > limit:
        return Stop(
            ENGINE_OUTAGE_EXIT,
            f"the Docker engine at {config.engine_url} has not answered for "
            f"{now - state.engine_failing_since:.0f} s (outage limit {limit:g} s; "
            f"{state.engine_error}): stopping so that the container is restarted",
        )
    return None
