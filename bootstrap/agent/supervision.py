"""What the agent decides about the flow runs it launched, once their container has exited:
whether the run must be ended Failed and with which reason, and whether the container goes
(a success) or stays for diagnosis (until the retention runs out). Pure functions; the
Docker side that acts on them is :mod:`bootstrap.agent.docker_runs`.

Prefect 1.2.4's agents never look at a flow run again once its container started: a run
whose container dies before the flow runner could report (an OOM kill, a failed extras
install, ``docker kill``) stays Submitted or Running until the server's Lazarus or zombie
killer notices, minutes later, and with no reason.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Optional, Sequence

RUN_LABEL = "io.prefect.flow-run-id"  # prefect's own label on the containers it creates
OWNER_LABEL = "io.prefect-agent.owner"  # ours: the id of the agent that created it
CONTAINER_PREFIX = "prefect-flow-run-"
# States after which nothing more happens to a run (prefect's State.is_finished()).
FINISHED_STATES = frozenset(
    {"Success", "Failed", "Cancelled", "Skipped", "TriggerFailed", "TimedOut", "Looped",
     "Mapped", "Cached", "Finished", "ValidationFailed"}
)  # fmt: skip
TAIL_LINES = 20

# The exit codes of this image's entrypoint (bootstrap.util.errors) and the usual signals.
EXIT_MEANINGS = {
    2: "invalid settings",
    3: "the Prefect Server did not answer",
    5: "the container could not start its command (preflight)",
    6: "installing the extra packages failed",
    125: "the container could not be started (Docker)",
    126: "the command could not be run",
    127: "the command was not found",
    130: "interrupted (SIGINT)",
    134: "aborted (SIGABRT)",
    137: "killed (SIGKILL)",
    139: "crashed (SIGSEGV)",
    143: "terminated (SIGTERM)",
}


@dataclass(frozen=True)
class ContainerExit:
    """A flow-run container that has stopped, as ``docker inspect`` and its logs show it."""

    flow_run_id: str
    container_id: str
    name: str
    exit_code: int
    oom_killed: bool = False
    error: str = ""  # the engine's own error (a container that could not start)
    finished_at: Optional[datetime.datetime] = None
    output: Sequence[str] = ()  # its last lines of output


@dataclass(frozen=True)
class Verdict:
    fail_message: Optional[str]  # end the run Failed with this message; None: leave it
    remove: bool  # remove the container now; False: keep it for the retention time


def container_name(flow_run_id: str) -> str:
    """One name per flow run: the engine refuses a second container of the same run."""
    return f"{CONTAINER_PREFIX}{flow_run_id}"


def exit_reason(exit: ContainerExit) -> str:
    """``flow-run container NAME exited 137 (OOMKilled): killed (SIGKILL)``, then the last
    line of its output that says something."""
    cause = " (OOMKilled)" if exit.oom_killed else ""
    meaning = EXIT_MEANINGS.get(exit.exit_code, "")
    reason = f"flow-run container {exit.name} exited {exit.exit_code}{cause}"
    if exit.oom_killed:
        reason += ": out of memory; raise its memory limit"
    elif meaning:
        reason += f": {meaning}"
    detail = exit.error or last_words(exit.output)
    return f"{reason}; {detail}" if detail else reason


def last_words(output: Sequence[str]) -> str:
    """The last line of output that is an error, else the last non-empty one."""
    lines = [line.strip() for line in output if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or line.startswith(("EXTRA_", "BOOTSTRAP_")):
            return line[:500]
    return lines[-1][:500] if lines else ""


def judge(exit: ContainerExit, run_state: Optional[str]) -> Verdict:
    """``run_state``: the run's state in the API now (None: the run no longer exists).

    Exit 0 is prefect's flow runner ending normally, also when it leaves the run Running on
    purpose (a task retrying later: the agent deploys the run again then)."""
    if exit.exit_code == 0:
        return Verdict(None, remove=True)
    if run_state is None or run_state in FINISHED_STATES:
        return Verdict(None, remove=False)
    return Verdict(exit_reason(exit), remove=False)


def taken(run_state: Optional[str], live_container: bool) -> Optional[str]:
    """Why the agent must not deploy a run it found in the queue a moment ago: another agent
    took it meanwhile (prefect's agent would mark it Submitted again, and start it twice)."""
    if run_state is None:
        return "it no longer exists"
    if run_state == "Submitted" or run_state in FINISHED_STATES:
        return f"it is {run_state} already"
    if live_container:
        return "its container is running"
    return None


def expired(
    finished_at: Optional[datetime.datetime], now: datetime.datetime, retention: float
) -> bool:
    """A kept container is removed once it has been stopped for ``retention`` seconds."""
    if finished_at is None:
        return False
    return (now - finished_at).total_seconds() >= retention


def parse_docker_time(value: Optional[str]) -> Optional[datetime.datetime]:
    """Docker's RFC 3339 times (nanoseconds, ``Z``); its zero time (never) is None."""
    if not value or value.startswith("0001-"):
        return None
    return datetime.datetime.fromisoformat(re.sub(r"\.\d+", "", value).replace("Z", "+00:00"))
