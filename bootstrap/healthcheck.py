"""The image's HEALTHCHECK: is the agent in this container answering /api/health?

The same image also runs flow-run containers (and whatever command an operator gives),
where no agent listens. The check therefore looks at the container's main process first:

- a Prefect agent: healthy if its health server (its own ``--agent-address``) answers and,
  for a Docker agent, if its Docker engine (``--base-url``) answers a ping too: prefect's
  agent keeps polling without an engine, failing every run it takes, and says so only in
  its log;
- the bootstrap itself: still starting (installing extras, waiting for the server): not yet;
- anything else: no agent here, nothing to check: healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import urlsplit

import requests

from bootstrap.engine import ping

PROC = Path("/proc")
AGENT_TYPES = {"docker", "kubernetes", "local", "ecs", "vertex"}
DEFAULT_AGENT_ADDRESS = "http://:8080"


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def agent_health_url(cmdline: Sequence[str]) -> Optional[str]:
    """The health URL of ``prefect agent <type> start ...``, or None if not such a command."""
    words = list(cmdline)
    for index, word in enumerate(words[:-3]):
        if (
            Path(word).name == "prefect"
            and words[index + 1] == "agent"
            and words[index + 2] in AGENT_TYPES
            and words[index + 3] == "start"
        ):
            address = _option(words[index + 4 :], "--agent-address")
            if address is None:
                return ""  # an agent without a health server
            parts = urlsplit(address)
            host = parts.hostname if parts.hostname not in (None, "", "0.0.0.0") else "127.0.0.1"  # noqa: S104
            return f"http://{host}:{parts.port or 8080}/api/health"
    return None


def agent_engine_url(cmdline: Sequence[str]) -> Optional[str]:
    """The engine of ``prefect agent docker start --base-url URL ...``, else None."""
    words = list(cmdline)
    for index, word in enumerate(words[:-3]):
        if Path(word).name == "prefect" and words[index + 1 : index + 4] == [
            "agent",
            "docker",
            "start",
        ]:
            return _option(words[index + 4 :], "--base-url")
    return None


def _option(words: List[str], name: str) -> Optional[str]:
    for index, word in enumerate(words):
        if word == name and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def is_bootstrap(cmdline: Sequence[str]) -> bool:
    return any(Path(word).name == "prefect-agent-bootstrap" for word in cmdline[:2]) or (
        len(cmdline) > 2 and cmdline[1:3] == ["-m", "bootstrap"]
    )


def main_process(proc: Path = PROC) -> List[str]:
    """The container's main process: PID 1, or its first child when PID 1 is an init."""
    init = _cmdline(proc / "1")
    if init and Path(init[0]).name not in ("tini", "docker-init", "dumb-init"):
        return init
    children = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == "1":  # ppid
                children.append(int(entry.name))
    return _cmdline(proc / str(min(children))) if children else init


def _cmdline(process: Path) -> List[str]:
    try:
        raw = (process / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def check(cmdline: Sequence[str], timeout: float = 5.0) -> Verdict:
    url = agent_health_url(cmdline)
    if url is None:
        if is_bootstrap(cmdline):
            return Verdict(False, "the agent has not started yet (bootstrap still running)")
        return Verdict(True, f"no agent in this container ({' '.join(cmdline[:3])} ...)")
    if url == "":
        return Verdict(True, "the agent runs without --agent-address: nothing to probe")
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return Verdict(False, f"{url}: {exc.__class__.__name__}")
    if response.status_code != 200:
        return Verdict(False, f"{url}: HTTP {response.status_code}")
    engine = agent_engine_url(cmdline)
    if engine:
        problem = ping(engine, timeout)
        if problem:
            return Verdict(False, f"{url}: ok, but the Docker engine at {engine}: {problem}")
    return Verdict(True, f"{url}: ok")
