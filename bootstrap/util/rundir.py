"""The agent's run directory: files the bootstrap writes for the agent's own processes (the
flow-run Job template) and for the health check (``agent.json``: which process is the
agent and where its health server answers).

``PREFECT_AGENT_RUN_DIR`` names it (the image sets ``/tmp/prefect-agent``: a tmpfs on a
read-only root); by default it is a directory of this user's under the temporary directory.
Standard library only: the health check reads it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

RUN_DIR_ENV = "PREFECT_AGENT_RUN_DIR"
AGENT_FILE = "agent.json"


def run_dir(environ: Mapping[str, str] = os.environ) -> Path:
    configured = environ.get(RUN_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"prefect-agent-{os.getuid()}"


class RunDirError(OSError):
    """The run directory exists but is not this user's own (or not a directory)."""


def ensure_run_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The run directory, created private to this user if missing; refused if someone else
    owns it (a directory planted in a shared /tmp)."""
    directory = run_dir(environ)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RunDirError(f"{directory} is not a directory owned by uid {os.getuid()}")
    return directory


def write_file(directory: Path, name: str, text: str) -> Path:
    """Write ``name`` in ``directory`` atomically (readers never see half a file)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    target = directory / name
    os.replace(temporary, target)
    return target


def write_agent_info(info: Dict[str, Any], environ: Mapping[str, str] = os.environ) -> Path:
    return write_file(ensure_run_dir(environ), AGENT_FILE, json.dumps(info, indent=2) + "\n")


def read_agent_info(
    environ: Mapping[str, str] = os.environ, strict: bool = False
) -> Optional[Dict[str, Any]]:
    """What the bootstrap wrote about its agent; None if there is none. ``strict``: a file
    or directory that exists but cannot be read raises (PermissionError), not None."""
    try:
        data = json.loads((run_dir(environ) / AGENT_FILE).read_text())
    except FileNotFoundError:
        return None
    except PermissionError:
        if strict:
            raise
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
