"""Plots of a ``make bench`` run, where a reader would rather look than read:

- ``bench/image-size.png``: the prod image by component (the base, every entry of the
  environment of 10 MB or more, the rest) beside the baseline and the 0.6 x goal;
- ``bench/flowrun-latency.png``: created to Success of one flow run, the default agent idle
  and poked against prefect's stock agent, split into the wait for a poll, the agent's own
  work and the flow-run container.

Each is drawn only when the suites it needs ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from bench.harness import ROOT, Context

SIZE_PNG = ROOT / "bench" / "image-size.png"
LATENCY_PNG = ROOT / "bench" / "flowrun-latency.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_size(ctx: Context, path: Path = SIZE_PNG) -> bool:
    figures = ctx.figures
    if not ctx.components or "size_baseline" not in figures:
        return False
    plt = _pyplot()
    baseline = figures["size_baseline"].value
    parts: Dict[str, float] = dict(ctx.components)
    figure, axes = plt.subplots(figsize=(11, 3.6), dpi=110)
    left = 0.0
    colors = plt.get_cmap("tab20").colors
    handles = []
    for index, (name, mb) in enumerate(parts.items()):
        handles.append(
            axes.barh(
                1,
                mb,
                left=left,
                color=colors[index % len(colors)],
                height=0.6,
                label=f"{name}: {mb:.0f} MB",
            )
        )
        if mb >= 20:  # narrower ones: by colour in the legend
            axes.text(left + mb / 2, 1, f"{mb:.0f}", ha="center", va="center", fontsize=7)
        left += mb
    axes.barh(0, baseline, color="#bbbbbb", height=0.6)
    axes.text(baseline / 2, 0, f"baseline (pip, one stage) {baseline:.0f} MB", ha="center",
              va="center", fontsize=8)  # fmt: skip
    axes.axvline(0.6 * baseline, color="red", linestyle=":", linewidth=1)
    axes.text(0.6 * baseline, 1.45, " goal 0.6 x baseline", color="red", fontsize=8)
    prod = figures["size_prod"].value if "size_prod" in figures else left
    axes.set_yticks([0, 1])
    axes.set_yticklabels(["baseline", f"prod {prod:.0f} MB"], fontsize=8)
    axes.set_xlabel("MB (docker images)")
    axes.set_ylim(-0.5, 1.7)
    axes.set_title("The prod image by component (entries of the environment of 10 MB or more)",
                   fontsize=10)  # fmt: skip
    axes.grid(axis="x", alpha=0.3)
    axes.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    return True


LATENCY_BARS = (
    ("default agent, poked", "flowrun_success_poke", None),
    ("default agent, idle (1 s polls)", "flowrun_success_idle", "flowrun_backoff_idle"),
    ("stock agent, poked", "flowrun_success_poke_stock", None),
    ("stock agent, idle (10 s polls)", "flowrun_success_idle_stock", "flowrun_backoff_idle_stock"),
)


def flowrun_latency(ctx: Context, path: Path = LATENCY_PNG) -> bool:
    figures = ctx.figures
    if not all(key in figures for _, key, _ in LATENCY_BARS):
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 3.4), dpi=110)
    rows = list(range(len(LATENCY_BARS)))[::-1]
    container = figures["flowrun_container_start"].value + figures["flowrun_flow"].value
    for row, (_, total_key, wait_key) in zip(rows, LATENCY_BARS):
        total = figures[total_key].value
        wait = figures[wait_key].value if wait_key else 0.0
        run = min(container, total - wait)
        axes.barh(row, wait, color="#d62728", height=0.6)
        axes.barh(row, total - wait - run, left=wait, color="#1f77b4", height=0.6)
        axes.barh(row, run, left=total - run, color="#2ca02c", height=0.6)
        axes.text(total + 0.05, row, f"{total:.2f} s", va="center", fontsize=8)
    axes.set_yticks(rows)
    axes.set_yticklabels([label for label, _, _ in LATENCY_BARS], fontsize=8)
    axes.set_xlabel("seconds from a flow run's creation to Success (median)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#d62728", "#1f77b4", "#2ca02c")]
    names = ["waiting for a poll", "the agent (and the medians' spread)", "the flow-run container"]
    axes.legend(handles, names, fontsize=8, loc="upper right")
    axes.set_title("One flow run, created to Success", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    return True


def draw(ctx: Context) -> None:
    for plot in (image_size, flowrun_latency):
        if plot(ctx):
            print(f"  plot: {plot.__name__} written", flush=True)
