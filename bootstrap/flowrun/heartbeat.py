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
when the runner ends, however that happens: its stdin is a pipe held by the runner (and by
the processes the runner forks, so it also watches that its parent is still there). Like
prefect's, it is a separate process, so that a task holding the GIL cannot stop it.

A run whose environment sets ``PREFECT__CLOUD__HEARTBEAT_MODE`` keeps prefect's own heartbeat
in that mode; a mode set only in a ``config.toml`` is not seen, and ``off`` wins over it. A
flow whose settings turn heartbeats off gets none, as with prefect.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from typing import Any, Mapping, MutableMapping, Optional

from bootstrap.flowrun.report import FLOW_RUN_COMMAND, FlowRunRole
from bootstrap.util.log import configure_logging_from, logger

MODE_ENV = "PREFECT__CLOUD__HEARTBEAT_MODE"
FIRST_BEAT_SECONDS = 5.0
WATCH_SECONDS = 5.0  # how often it looks whether its runner is still there


def first_beat(interval: float) -> float:
    """The first beat comes soon, because the clock Lazarus reads started at Submitted,
    before the image pull. It does not come at once: a quick start is over before it, with
    no request."""
    return min(interval, FIRST_BEAT_SECONDS)


class Heartbeat:
    """Beat for the run while the container prepares (extras), so that the server's
    Lazarus (10 minutes without a heartbeat) does not resubmit a healthy slow start."""

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


def beat(role: FlowRunRole) -> Optional[str]:
    """One heartbeat; why it did not reach the API, if it did not."""
    try:
        role.heartbeat()
    except Exception as exc:  # the API may be briefly away: try again next time
        logger.debug("flow-run heartbeat failed: %s", exc)
        return str(exc) or type(exc).__name__
    return None


def sets_its_own_mode(environ: Mapping[str, str]) -> bool:
    """The run chose prefect's heartbeat mode (prefect lower-cases what follows PREFECT__)."""
    return any(name.startswith("PREFECT__") and name.upper() == MODE_ENV for name in environ)


def take_over(
    role: Optional[FlowRunRole], environ: MutableMapping[str, str]
) -> Optional[subprocess.Popen]:
    """Start the run's heartbeat process and turn prefect's off (in ``environ``, which
    prefect's configuration reads when it loads), unless there is no run or it chose a mode
    of its own. Hold the result for as long as the runner runs: its pipe is the process's
    lifeline."""
    if role is None or sets_its_own_mode(environ):
        return None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid())],
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
    threading.Thread(target=say_if_it_dies, args=(process,), daemon=True).start()
    return process


def say_if_it_dies(process: subprocess.Popen) -> None:
    """Reap the heartbeat process when it ends, and say so at once if it failed."""
    code = process.wait()
    if code:
        logger.warning("the flow run's heartbeat process died (exit %d): no heartbeat", code)


def runner_ended(lifeline: int, parent: int, timeout: Optional[float]) -> bool:
    """True once the runner's end of the pipe is closed (it never writes to it), or the
    runner is gone while a process it forked still holds that end."""
    readable, _, _ = select.select([lifeline], [], [], timeout)
    return bool(readable) or os.getppid() != parent


def until(moment: float) -> float:
    return max(0.0, min(WATCH_SECONDS, moment - time.monotonic()))


def beat_while_the_runner_runs(role: FlowRunRole, lifeline: int, parent: int) -> int:
    """Beat every period until the runner ends; the number of beats that reached the API.
    Failures are said at the first and then at every tenth in a row: a run without a
    heartbeat is failed by the zombie killer after 10 minutes."""
    sent = failures = 0
    next_beat = time.monotonic() + first_beat(role.heartbeat_interval)
    while not runner_ended(lifeline, parent, until(next_beat)):
        if time.monotonic() < next_beat:
            continue
        if sent == failures == 0 and not role.heartbeat_enabled():
            logger.debug("the flow's settings turn heartbeats off: none sent")
            break
        next_beat = time.monotonic() + role.heartbeat_interval
        failure = beat(role)
        if failure is None:
            sent, failures = sent + 1, 0
            continue
        failures += 1
        if failures % 10 == 1:
            logger.warning(
                "the flow run's heartbeat does not reach the API at %s (%d in a row): %s",
                role.api_url, failures, failure,
            )  # fmt: skip
    return sent


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its runner's to handle (a direct start)
    configure_logging_from(os.environ)
    role = FlowRunRole.detect(os.environ, FLOW_RUN_COMMAND)
    if role is None:
        logger.error("not a flow run launched by an agent: no heartbeat to send")
        return 2
    if sys.stdin is None or not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        logger.error("stdin must be a pipe from the flow runner: it ends when the runner does")
        return 2
    # The runner's pid from the runner itself: it may be gone before this process looks.
    runner = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else os.getppid()
    beat_while_the_runner_runs(role, sys.stdin.fileno(), runner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
