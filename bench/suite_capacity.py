"""Throughput after an outage: a queue of flow runs waiting when the agent starts, drained by
the prod image's agent under ``BOOTSTRAP_AGENT_MAX_FLOW_RUNS`` 2, 4 and no limit, and by
prefect 1.2.4's stock Docker agent in the same image (no limit exists there).

Each variant: a fresh agent on the e2e stand (the API double, a one-task flow mounted into
the flow-run containers, host network), ``RUNS`` runs created at once, then the time from
the agent's start to the last run final. Reported as runs per minute (the median of
``ctx.repeat`` drains is too long for a bench run: one drain per variant, a figure per
drain), with the most flow-run containers alive at once and the polls per run.
"""

from __future__ import annotations

import time
from typing import Optional

import docker

from bench.harness import Context
from prefect_api_double import PrefectApiDouble
from testbed.agent_stand import DockerAgentStand
from testbed.docker import Containers
from testbed.flow_runs import (
    AliveContainers,
    flow_run_ids_in,
    remove_flow_run_containers,
    wait_final,
)

RUNS = 24
FLOW = "noop.py"
VARIANTS = (("2", "limit 2"), ("4", "limit 4"), ("0", "no limit"), (None, "stock 1.2.4 agent"))


def run(ctx: Context) -> None:
    client = docker.from_env(timeout=120)
    figures = {}
    for limit, label in VARIANTS:
        per_minute, most, polls = _drain(client, ctx.prod_image, limit)
        print(f"  {label}: {per_minute:.1f} runs/min, at most {most} alive, {polls:.1f} polls/run")
        figures[label] = per_minute
        key = f"capacity_{label.split()[0]}_{limit or 'stock'}"
        ctx.record(
            key,
            f"{RUNS} queued runs drained, {label}: runs per minute",
            [per_minute],
            unit="runs/min",
            note=f"at most {most} flow-run containers alive; {polls:.1f} polls per run",
        )
    stock = ctx.figures["capacity_stock_stock"].value
    for key in ("capacity_limit_2", "capacity_limit_4", "capacity_no_0"):
        figure = ctx.figures[key]
        figure.baseline, figure.ratio = "capacity_stock_stock", figure.value / stock
        print(f"  {figure.label}: {figure.ratio:.2f} x stock")


def _drain(client, image: str, limit: Optional[str]):
    api = PrefectApiDouble().start()
    containers = Containers(client)
    try:
        stand = DockerAgentStand(api, containers, image)
        agent = stand.start_agent(BOOTSTRAP_AGENT_MAX_FLOW_RUNS=limit or "0")
        flow_id = stand.register(FLOW)
        agent_id = api.agents()[0]["id"]
        # the outage: the stand's agent registered the tenant and stops; runs pile up
        agent.stop()
        runs = [stand.run(flow_id) for _ in range(RUNS)]
        alive = AliveContainers(client, agent_id) if limit is not None else None
        api.clear_requests()
        started = time.monotonic()
        if limit is not None:
            agent.start()
        else:  # the stock agent instead (its start-up is timed too)
            agent.remove(force=True)
            stand.start_stock_agent()
        states = wait_final(api, runs, timeout=900)
        drained = time.monotonic() - started
        if set(states.values()) != {"Success"}:
            raise RuntimeError(f"not every run succeeded: {states}")
        polls = len(api.requests_for("get_runs_in_queue")) / RUNS
        most = alive.most if alive else _most_stock(api, runs)
        if alive:
            alive.close()
        return RUNS / drained * 60, most, polls
    finally:
        containers.remove_all()
        # the stock agent leaves every container, ours a run's it had not removed yet
        remove_flow_run_containers(client, flow_run_ids_in([api]))
        api.stop()


def _most_stock(api: PrefectApiDouble, runs) -> int:
    """The stock agent's containers carry no owner label: the most runs Running at once
    (from the double's state history; a container lives a little longer)."""
    moments = []
    for run_id in runs:
        states = api.flow_run_states(run_id)
        times = {s["state"]: s["timestamp"].timestamp() for s in states}
        moments += [(times["Running"], 1), (times["Success"], -1)]
    now = most = 0
    for _, step in sorted(moments):
        now += step
        most = max(most, now)
    return most
