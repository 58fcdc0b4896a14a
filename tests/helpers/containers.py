"""Looking at containers: what changed in them, their processes, their output."""

from __future__ import annotations

from typing import Dict, List


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output, output[-4000:]


def changes(container) -> List[str]:
    """``docker diff``: "A path" (added) and "D path" (deleted) against the image (bytecode
    caches aside). Directories whose contents came and went show as modified: not listed."""
    return sorted(
        f"{'?AD'[change['Kind']]} {change['Path']}"
        for change in container.diff() or []
        if change["Kind"] in (1, 2) and "__pycache__" not in change["Path"]
    )


def in_env(paths: List[str]) -> List[str]:
    return [path for path in paths if path[2:].startswith("/opt/prefect")]


def processes(container) -> List[Dict[str, str]]:
    """``docker top`` as dicts: pid, ppid, uid, cmd (the full command line), and "init":
    whether it is the container's first process (PIDs are the host's)."""
    top = container.top(ps_args="-o pid,ppid,uid,args")
    rows = [dict(zip(("pid", "ppid", "uid", "cmd"), row)) for row in top["Processes"] or []]
    pids = {row["pid"] for row in rows}
    for row in rows:
        row["init"] = row["ppid"] not in pids
    return rows
