"""The image's HEALTHCHECK: is the agent in this container alive?

The same image also runs flow-run containers (and whatever command an operator gives),
where no agent listens. The check therefore looks at the container's main process first:

- the agent the bootstrap started: the bootstrap wrote which process it is and where its
  health server answers (``agent.json`` in the run directory, :mod:`bootstrap.util.rundir`);
  that server (:mod:`bootstrap.agent.health_server`) judges its poll loop and its Docker engine;
- the bootstrap itself, still starting (installing extras, waiting for the server): not
  yet healthy;
- anything else: no agent here, nothing to check: healthy.

Nothing is taken from the agent's command line: a label or option there cannot point the
check elsewhere. Standard library only: the image's HEALTHCHECK runs this module with an
interpreter and a copy of it that only root can write (``python -I -S``), whoever the
container's user is. Started as root (the image's user), it becomes the user the agent runs
as before it reads anything the agent wrote: the run directory is that user's alone (root
without CAP_DAC_OVERRIDE, as the compose file runs it, could not even look), and what it
names is that user's to choose. (An agent that stayed root, for a socket only root may use,
is checked as root.) A run directory it cannot read is unhealthy, never "no agent".
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bootstrap.util.rundir import read_agent_info

PROC = Path("/proc")


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def is_bootstrap(cmdline: Sequence[str]) -> bool:
    return any(Path(word).name == "prefect-agent-bootstrap" for word in cmdline[:2]) or (
        len(cmdline) > 2 and cmdline[1:3] == ["-m", "bootstrap"]
    )


def main_process(proc: Path = PROC) -> Tuple[int, List[str]]:
    """The container's main process (pid, command line): PID 1, or its first child when
    PID 1 is an init."""
    init = _cmdline(proc / "1")
    if init and Path(init[0]).name not in ("tini", "docker-init", "dumb-init"):
        return 1, init
    children = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == "1":  # ppid
                children.append(int(entry.name))
    if not children:
        return 1, init
    first = min(children)
    return first, _cmdline(proc / str(first))


def process_uid(pid: int, proc: Path = PROC) -> Optional[int]:
    """The real uid of a process (None: gone)."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cmdline(process: Path) -> List[str]:
    try:
        raw = (process / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def check(
    main: Tuple[int, Sequence[str]], agent: Optional[Dict[str, Any]], timeout: float = 5.0
) -> Verdict:
    """``main``: the main process; ``agent``: what the bootstrap wrote about the agent."""
    pid, cmdline = main
    if agent is not None and agent.get("pid") == pid:
        url = agent.get("health_url")
        if not url:
            return Verdict(True, "the agent runs without a health server: nothing to probe")
        return _probe(str(url), timeout)
    if is_bootstrap(cmdline):
        return Verdict(False, "the agent has not started yet (bootstrap still running)")
    return Verdict(True, f"no agent in this container ({' '.join(cmdline[:3])} ...)")


def _probe(url: str, timeout: float) -> Verdict:
    if not url.startswith("http://"):
        return Verdict(False, f"{url!r}: not the agent's http:// health server")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            status, body = response.status, response.read(4096)
    except urllib.error.HTTPError as exc:  # 503: the agent says why
        status, body = exc.code, exc.read(4096)
    except (OSError, ValueError) as exc:  # refused, timed out, a URL that is not one
        return Verdict(False, f"{url}: {exc.__class__.__name__}")
    try:
        reason = str(json.loads(body).get("reason") or "")
    except (ValueError, AttributeError):
        reason = ""
    if status != 200:
        return Verdict(False, f"{url}: HTTP {status}" + (f": {reason}" if reason else ""))
    return Verdict(True, f"{url}: ok" + (f" ({reason})" if reason else ""))


def main() -> int:
    """Print the verdict; exit 0 if healthy (Docker's HEALTHCHECK contract)."""
    import os

    from bootstrap.root.privileges import RUNTIME_USER_ENV, drop_privileges
    from bootstrap.util.errors import BootstrapError

    container_main = main_process()
    if process_uid(container_main[0]) != 0:  # the agent's user, not root (unless the agent is root)
        try:
            drop_privileges(os.environ.get(RUNTIME_USER_ENV), Path("/nonexistent"), always=True)
        except BootstrapError as exc:
            print(f"cannot check as the runtime user: {exc}")
            return 1
    try:
        agent = read_agent_info(strict=True)
    except OSError as exc:  # there, but not ours to read: say so, never "no agent"
        print(f"cannot read the agent's run directory: {exc.strerror}")
        return 1
    verdict = check(container_main, agent)
    print(verdict.reason)
    sys.stdout.flush()
    return 0 if verdict.healthy else 1
