"""The real server's background services that act on flow runs (Prefect Server's ``towel``):
Lazarus and the zombie killer, on a clock that tests may speed up.

Written from PrefectHQ/server's services (``towel/lazarus.py``, ``towel/zombie_killer.py``)
as they behave, not copied:

- **Lazarus** (every 10 minutes): flow runs in Submitted or Running whose heartbeat is older
  than 10 minutes (a run without any heartbeat is never picked), unless one of their task
  runs is still active (Scheduled, Paused, Resume, Retrying, Running, Cancelling) or their
  flow group turned heartbeats or Lazarus off. Each is set Scheduled again, "Rescheduled by
  a Lazarus process.", its ``times_resurrected`` counted, with a log line naming the
  attempt; a run already resurrected 3 times is set Failed instead.
- **Zombie killer** (every 2 minutes): task runs in Running whose *flow run's* heartbeat is
  older than 10 minutes: set Retrying when retries are left, else Failed; flow runs left in
  Cancelling without a heartbeat are set Failed.

``speedup`` divides every period and timeout: at 600, Lazarus runs every second and judges
a heartbeat older than one second stale.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from . import service
from .store import Store, now

LAZARUS_PERIOD = 600.0
ZOMBIE_KILLER_PERIOD = 120.0
HEARTBEAT_TIMEOUT = 600.0
RESURRECTION_ATTEMPTS = 3
ACTIVE_TASK_RUN_STATES = ("Scheduled", "Paused", "Resume", "Retrying", "Running", "Cancelling")
LAZARUS_MESSAGE = "Rescheduled by a Lazarus process."
LAZARUS_FAILED = (
    f"A Lazarus process attempted to reschedule this run {RESURRECTION_ATTEMPTS} times "
    "without success. Marking as failed."
)


@dataclass(frozen=True)
class Clock:
    """The services' periods and the heartbeat timeout, divided by ``speedup``."""

    speedup: float = 1.0

    def seconds(self, real: float) -> float:
        return real / self.speedup

    @property
    def heartbeat_timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.seconds(HEARTBEAT_TIMEOUT))


def _flow_group_settings(store: Store, run: Dict[str, Any]) -> Dict[str, Any]:
    flow = store.get("flow", run["flow_id"]) or {}
    group = store.get("flow_group", flow.get("flow_group_id")) or {}
    return group.get("settings") or {}


def _log(store: Store, run: Dict[str, Any], message: str, level: str = "INFO") -> None:
    store.insert(
        "log",
        {
            "tenant_id": run["tenant_id"],
            "flow_run_id": run["id"],
            "timestamp": now(),
            "message": message,
            "name": "prefect-server.Lazarus",
            "level": level,
            "is_loaded_from_archive": False,
        },
    )


def lazarus(store: Store, clock: Clock, at: Optional[datetime.datetime] = None) -> List[str]:
    """One pass of Lazarus; the ids of the runs it rescheduled or failed."""
    states = service._states()
    stale_before = (at or now()) - clock.heartbeat_timeout
    acted = []
    with store.lock:
        for run in list(store.all("flow_run")):
            if run["state"] not in ("Submitted", "Running"):
                continue
            if run["heartbeat"] is None or run["heartbeat"] > stale_before:
                continue
            settings = _flow_group_settings(store, run)
            if settings.get("heartbeat_enabled") is False:
                continue
            if settings.get("lazarus_enabled") is False:
                continue
            task_states = {tr["state"] for tr in store.find("task_run", flow_run_id=run["id"])}
            if task_states & set(ACTIVE_TASK_RUN_STATES):
                continue
            attempts = run["times_resurrected"] or 0
            if attempts >= RESURRECTION_ATTEMPTS:
                service.set_flow_run_state(store, run["id"], states.Failed(LAZARUS_FAILED))
            else:
                service.set_flow_run_state(
                    store, run["id"], states.Scheduled(LAZARUS_MESSAGE, start_time=now())
                )
                store.update("flow_run", run["id"], {"times_resurrected": attempts + 1})
                _log(store, run, f"{LAZARUS_MESSAGE} This is attempt {attempts + 1}.")
            acted.append(run["id"])
    return acted


def zombie_killer(store: Store, clock: Clock, at: Optional[datetime.datetime] = None) -> List[str]:
    """One pass of the zombie killer; the ids of the task runs and flow runs it changed."""
    states = service._states()
    stale_before = (at or now()) - clock.heartbeat_timeout
    acted = []
    with store.lock:
        for task_run in list(store.all("task_run")):
            if task_run["state"] != "Running":
                continue
            run = store.get("flow_run", task_run["flow_run_id"]) or {}
            if not run or run["heartbeat"] is None or run["heartbeat"] > stale_before:
                continue
            if _flow_group_settings(store, run).get("heartbeat_enabled") is False:
                continue
            task = store.get("task", task_run["task_id"]) or {}
            max_retries = task.get("max_retries") or 0
            run_count = (task_run["serialized_state"] or {}).get("run_count") or 1
            if run_count <= max_retries:
                message = (
                    "No heartbeat detected from the remote task; retrying the run."
                    f"This will be retry {run_count} of {max_retries}."
                )
                state = states.Retrying(message, start_time=now(), run_count=run_count)
            else:
                message = (
                    "No heartbeat detected from the remote task; marking the task run "
                    f"{task_run['id']} ({task.get('name')}) as failed."
                )
                state = states.Failed(message)
            service.set_task_run_state(store, task_run["id"], state)
            acted.append(task_run["id"])
        for run in list(store.all("flow_run")):
            if run["state"] != "Cancelling" or run["heartbeat"] is None:
                continue
            if run["heartbeat"] <= stale_before:
                message = "No heartbeat detected from the flow run; marking the run as failed."
                service.set_flow_run_state(store, run["id"], states.Failed(message))
                acted.append(run["id"])
    return acted


class BackgroundServices:
    """Lazarus and the zombie killer in threads of their own, as the server runs them."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.stopped = threading.Event()
        self.passes: Dict[str, int] = {"lazarus": 0, "zombie_killer": 0}
        self.errors: List[str] = []
        self._threads: List[threading.Thread] = []

    def start(self) -> BackgroundServices:
        for name, service_pass, period in (
            ("lazarus", lazarus, LAZARUS_PERIOD),
            ("zombie_killer", zombie_killer, ZOMBIE_KILLER_PERIOD),
        ):
            thread = threading.Thread(
                target=self._loop, args=(name, service_pass, period), daemon=True, name=name
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, name: str, service_pass, period: float) -> None:
        while not self.stopped.wait(self.clock.seconds(period)):
            try:
                service_pass(self.store, self.clock)
            except Exception as exc:  # the real services log and go on
                self.errors.append(f"{name}: {exc!r}")
            self.passes[name] += 1

    def stop(self) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(timeout=5)
