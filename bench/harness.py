"""The benchmark harness: timing, medians, ratios, the results file and the docs table.

A suite is a module ``bench/suite_<name>.py`` with ``run(ctx: Context) -> None`` that calls
``ctx.record(...)``. Every figure is the median of ``ctx.repeat`` runs; a figure with a
``baseline`` (another figure's key, measured in the same run) also gets ``value/baseline``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOCS = ROOT / "docs" / "benchmarks.md"  # the table goes between TABLE_START and TABLE_END
TABLE_START = "<!-- bench:start -->"
TABLE_END = "<!-- bench:end -->"


@dataclass
class Figure:
    suite: str
    key: str
    label: str
    value: float
    unit: str
    samples: List[float] = field(default_factory=list)
    baseline: Optional[str] = None
    ratio: Optional[float] = None
    goal: Optional[str] = None
    note: Optional[str] = None


def median_time(function: Callable[[], object], repeat: int) -> List[float]:
    """Wall-clock seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


class Context:
    def __init__(self, repeat: int):
        self.repeat = repeat
        self.figures: Dict[str, Figure] = {}
        self.components: Dict[str, float] = {}  # the prod image by component, MB (image)
        self.suite = ""
        self.measured_at: Optional[str] = None  # when the figures were measured (UTC)
        image = os.environ.get("IMAGE", "prefect-agent")
        self.dev_image = f"{image}:{os.environ.get('DEV_TAG', 'dev')}"
        self.prod_image = f"{image}:{os.environ.get('PROD_TAG', 'prod')}"
        self._docker: Optional[str] = os.environ.get("DOCKER")

    @property
    def docker(self) -> str:
        """The docker CLI (asked for only by suites that run it: --redraw needs none)."""
        if self._docker is None:
            self._docker = subprocess.run(
                [str(ROOT / "scripts" / "docker-cli.sh")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        return self._docker

    def record(
        self,
        key: str,
        label: str,
        samples: List[float],
        unit: str = "s",
        baseline: Optional[str] = None,
        goal: Optional[str] = None,
        note: Optional[str] = None,
    ) -> Figure:
        value = statistics.median(samples)
        figure = Figure(
            self.suite, key, label, value, unit, list(samples), baseline, None, goal, note
        )
        if baseline is not None:
            base = self.figures[baseline].value
            figure.ratio = value / base if base else None
        self.figures[key] = figure
        ratio = f"  ({figure.ratio:.2f}x {self.figures[baseline].label})" if baseline else ""
        print(f"  {label}: {_fmt(value, unit)}{ratio}", flush=True)
        return figure


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "ms":
        return f"{value:g} ms"
    return f"{value:.1f} {unit}"


def write_results(ctx: Context) -> None:
    ctx.measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    payload = {
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "repeat": ctx.repeat,
        "measured_at": ctx.measured_at,
        "figures": [asdict(figure) for figure in ctx.figures.values()],
        "prod_components_mb": {name: round(mb, 1) for name, mb in ctx.components.items()},
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")


def load_results(path: Path = RESULTS) -> Context:
    """The figures of the run that wrote ``path``, to draw its table and plots again."""
    payload = json.loads(path.read_text())
    ctx = Context(repeat=payload["repeat"])
    ctx.measured_at = payload.get("measured_at")
    ctx.figures = {each["key"]: Figure(**each) for each in payload["figures"]}
    ctx.components = dict(payload.get("prod_components_mb") or {})
    return ctx


def markdown_table(ctx: Context) -> str:
    lines = [
        "| suite | figure | median | vs. baseline | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in ctx.figures.values():
        ratio = (
            f"{figure.ratio:.2f} x {ctx.figures[figure.baseline].label}"
            if figure.ratio is not None and figure.baseline
            else ""
        )
        lines.append(
            f"| {figure.suite} | {figure.label} | {_fmt(figure.value, figure.unit)} | {ratio} | "
            f"{figure.goal or ''} |"
        )
    return "\n".join(lines)


def update_docs(ctx: Context, path: Path = DOCS) -> bool:
    """Replace the table between the markers in ``path``; False (and a note) without them."""
    text = path.read_text()
    if text.count(TABLE_START) != 1 or text.count(TABLE_END) != 1:
        print(f"{path}: not exactly one {TABLE_START} and one {TABLE_END}; table not written")
        return False
    head, rest = text.split(TABLE_START, 1)
    if TABLE_END not in rest:
        print(f"{path}: {TABLE_END} comes before {TABLE_START}; table not written")
        return False
    _, tail = rest.split(TABLE_END, 1)
    day = (ctx.measured_at or time.strftime("%Y-%m-%d"))[:10]
    stamp = f"_Measured {day} by `make bench` (median of {ctx.repeat} runs)._"
    path.write_text(f"{head}{TABLE_START}\n{stamp}\n\n{markdown_table(ctx)}\n{TABLE_END}{tail}")
    return True
