"""The agent's start-up timeline: markers read from a container's logs, phases, the plot.

Every marker is a wall-clock time on the host's clock: the engine's ``Created`` and
``State.StartedAt``, the time the engine received each log line (``docker logs
--timestamps``, nanoseconds; the lines' own millisecond stamps agree with it), and the
benchmark's own clock for ``docker run -d`` and for the first answer of ``/api/health``.
The bootstrap must log at DEBUG for the two earliest markers (entrypoint start, root dropped).
"""

from __future__ import annotations

import re
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

# (marker, regex on a log line); the last line matching wins for "projects" (one per project)
LOG_MARKERS: List[Tuple[str, str]] = [
    ("entrypoint", r"bootstrap \| Entrypoint started"),
    ("user", r"bootstrap \| Running as "),
    ("run", r"bootstrap \| Waiting up to "),
    ("server", r"bootstrap \| Prefect Server at \S+ answered"),
    ("projects", r"bootstrap \| (Using|Created) (tenant|project) "),
    ("agent_exec", r"bootstrap \| Starting the agent:"),
    ("registered", r"agent \| Registration successful!"),
]
LAST_MATCH = {"projects"}

# (phase key, label, from marker, to marker), in order
PHASES: List[Tuple[str, str, str, str]] = [
    ("create", "docker run -d: container created", "run_d", "created"),
    ("start", "engine starts it (namespaces, mounts)", "created", "started"),
    ("user", "root step: socket group added, root dropped", "started", "user"),
    ("entrypoint", "tini, entrypoint: sh, Python, bootstrap imports", "user", "entrypoint"),
    ("exec_run", "extras checked (none), run goes on in-process", "entrypoint", "run"),
    ("server", "Prefect Server answered (query hello)", "run", "server"),
    ("projects", "tenant and projects found", "server", "projects"),
    (
        "agent_exec",
        "preflight: Docker engine, a flow run reaches the server",
        "projects",
        "agent_exec",
    ),
    ("registered", "agent: import prefect, register_agent", "agent_exec", "registered"),
    ("healthy", "agent: health server answers", "registered", "healthy"),
]


def docker_time(stamp: str) -> float:
    """Seconds since the epoch of a Docker RFC 3339 time with nanoseconds (UTC)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp.strip())
    if not match:
        raise ValueError(f"not a Docker UTC time: {stamp!r}")
    whole = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    fraction = float(f"0.{match.group(2)}") if match.group(2) else 0.0
    return whole.timestamp() + fraction


def log_markers(timestamped_logs: str) -> Dict[str, float]:
    """Markers from ``docker logs --timestamps`` output (stdout and stderr, any order)."""
    found: Dict[str, float] = {}
    for line in timestamped_logs.splitlines():
        stamp, _, text = line.partition(" ")
        if not stamp.endswith("Z"):
            continue
        for name, pattern in LOG_MARKERS:
            if re.search(pattern, text):
                when = docker_time(stamp)
                if name in LAST_MATCH:
                    found[name] = max(found.get(name, when), when)
                else:
                    found[name] = min(found.get(name, when), when)
    return found


def phase_durations(markers: Dict[str, float]) -> Dict[str, float]:
    """Seconds per phase; raises KeyError naming a missing marker."""
    missing = [m for _, _, a, b in PHASES for m in (a, b) if m not in markers]
    if missing:
        raise KeyError(f"start-up markers missing: {sorted(set(missing))}")
    return {key: markers[end] - markers[begin] for key, _, begin, end in PHASES}


def plot(
    runs: Sequence[Dict[str, float]],
    path: Path,
    title: str,
    floor: Optional[float] = None,
    goal: Optional[float] = None,
) -> None:
    """A horizontal bar per phase, each starting where the previous one ends (median
    durations), with the ``import prefect`` floor and the goal as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    medians = [statistics.median(run[key] for run in runs) for key, _, _, _ in PHASES]
    labels = [label for _, label, _, _ in PHASES]
    starts = [sum(medians[:index]) for index in range(len(medians))]
    total = sum(medians)
    engine, bootstrap, agent = "#8c8c8c", "#1f77b4", "#ff7f0e"
    colors = [engine, engine] + [bootstrap] * 6 + [agent] * 2

    figure, axes = plt.subplots(figsize=(10, 4.8), dpi=110)
    rows = list(range(len(PHASES)))[::-1]
    axes.barh(rows, medians, left=starts, color=colors, height=0.6)
    for row, start, width in zip(rows, starts, medians):
        axes.text(
            start + width + total * 0.008, row, f"{width * 1000:.0f} ms", va="center", fontsize=8
        )
    axes.set_yticks(rows)
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xlabel("seconds since docker run -d")
    right = max(total, goal or 0.0, floor or 0.0) * 1.12
    axes.set_xlim(0, right)
    axes.axvline(total, color="black", linewidth=1)
    axes.text(total, -0.9, f" healthy {total:.2f} s", fontsize=8)
    if floor is not None:
        axes.axvline(floor, color="green", linestyle="--", linewidth=1)
        # One row lower than the "healthy" note: the two lines are often close together.
        axes.text(floor, -1.5, f"import prefect floor {floor:.2f} s ", fontsize=8, ha="right")
    if goal is not None:
        axes.axvline(goal, color="red", linestyle=":", linewidth=1)
        axes.text(goal, -0.9, f"goal {goal:.2f} s ", fontsize=8, color="red", ha="right")
    axes.set_ylim(-1.9, len(PHASES) - 0.2)
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
