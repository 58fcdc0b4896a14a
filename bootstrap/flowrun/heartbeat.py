"""The flow run's heartbeat, sent by this image's code for the whole life of its container.

- While the container prepares (extras): a thread of the entrypoint (:class:`Heartbeat`).
- While prefect's flow runner runs: a small process of its own,
  ``python -m bootstrap.flowrun.heartbeat`` (:func:`take_over`), in place of the one prefect
  starts in its default ``cloud.heartbeat_mode`` "process".

Prefect's heartbeat process (``python -m prefect heartbeat flow-run``) imports all of prefect
for one request every 30 s: 0.5 CPU-second to start and 83 MB resident for the whole run,
measured in the prod image. It starts only once the flow is loaded from storage. It is killed
by the runner's ``finally``, so a runner killed with SIGKILL leaves it beating for a dead run.

This one is standard library only: 0.06 s, 20 MB. It starts before prefect loads, and ends
when the runner ends, however that happens: its stdin is a pipe that only the runner holds.
Like prefect's, it is a separate process, so that a task holding the GIL cannot stop it.

A run whose environment sets ``PREFECT__CLOUD__HEARTBEAT_MODE`` keeps prefect's own heartbeat
in that mode. A flow whose settings turn heartbeats off gets none, as with prefect.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any, MutableMapping, Optional

from bootstrap.flowrun.report import FLOW_RUN_COMMAND, FlowRunRole
from bootstrap.util.log import logger

MODE_ENV = "PREFECT__CLOUD__HEARTBEAT_MODE"
FIRST_BEAT_SECONDS = 5.0


def first_beat(interval: float) -> float:
    """The first beat comes soon, because the clock Lazarus reads started at Submitted,
    before the image pull. It does not come at once: a quick start is over before it, with
    no request."""
    return min(interval, FIRST_BEAT_SECONDS)


class Heartbeat:
    """Beat for the run while the container prepares (extras), so that the server's
    Lazarus (10 minutes without a heartbeat) does not resubmit a healthy slow start."""

    FIRST_BEAT_SECONDS = FIRST_BEAT_SECONDS

    def __init__(
        self, role: FlowRunRole, interval: Optional[float] = None, first: Optional[float] = None
    ) -> None:
        self.role = role
        self.interval = role.heartbeat_interval if interval is None else interval
        self.first = first_beat(self.interval) if first is None else first
        self.stopped = threading.Event()
        self.beats = 0
        self._thread = threading.Thread(target=self._run, name="flow-run-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        wait = self.first
        while not self.stopped.wait(wait):
            beat(self.role)
            self.beats += 1
            wait = self.interval


def beat(role: FlowRunRole) -> None:
    try:
        role.heartbeat()
    except Exception as exc:  # the API may be briefly away: try again next time
        logger.debug("flow-run heartbeat failed: %s", exc)


def take_over(
    role: Optional[FlowRunRole], environ: MutableMapping[str, str]
) -> Optional[subprocess.Popen]:
    """Start the run's heartbeat process and turn prefect's off (in ``environ``, which
    prefect's configuration reads), unless there is no run or it chose a mode of its own.
    Hold the result for as long as the runner runs: its pipe is the process's lifeline."""
    if role is None or MODE_ENV in environ:
        return None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            # Out of the container's process group: docker stop's SIGINT goes to the runner
            # alone, and this process ends with it.
            start_new_session=True,
        )
    except OSError as exc:  # no process to spare: prefect's own heartbeat, as without us
        logger.warning("cannot start the flow run's heartbeat process (%s): prefect's runs", exc)
        return None
    environ[MODE_ENV] = "off"
    return process


def runner_ended(lifeline: int, timeout: float) -> bool:
    """True once the runner's end of the pipe is closed (it never writes to it)."""
    readable, _, _ = select.select([lifeline], [], [], timeout)
    return bool(readable)


def beat_while_the_runner_runs(role: FlowRunRole, lifeline: int) -> int:
    """Beat every period until the runner ends; the number of beats sent."""
    beats = 0
    wait = first_beat(role.heartbeat_interval)
    while not runner_ended(lifeline, wait):
        if beats == 0 and not role.heartbeat_enabled():
            logger.debug("the flow's settings turn heartbeats off: none sent")
            break
        beat(role)
        beats += 1
        wait = role.heartbeat_interval
    return beats


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the runner's to handle
    from bootstrap.util.log import configure_logging, environ_log_level, register_secrets
    from bootstrap.util.secrets import environment_secrets

    register_secrets(environment_secrets(os.environ))
    configure_logging(environ_log_level(os.environ))
    role = FlowRunRole.detect(os.environ, FLOW_RUN_COMMAND)
    if role is None:
        logger.error("not a flow run launched by an agent: no heartbeat to send")
        return 2
    beat_while_the_runner_runs(role, sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
