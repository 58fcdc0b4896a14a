"""Flow-run latency with the Docker agent in the prod image (the e2e stand), and how much of it
is the agent's poll back-off.

The end-to-end stand (testbed.agent_stand.DockerAgentStand): the agent container against the
API double, a trivial flow (testbed/flows/squares.py, n=1: four tiny tasks) stored as a script
mounted into the flow-run containers, which run from the same image on the host network.

Every time comes from the double, on the host's clock: the run's state timestamps (Scheduled
when created, Submitted by the agent, Running and Success by the flow-run container) and the
time of the agent's ``get_runs_in_queue`` poll that first returned the run ("picked up").

Prefect 1.x agents sleep 0.25, 0.5, 1, 2, 4, 8 and then 10 s between polls that find nothing,
and go back to 0.25 s when one finds work; the launcher caps that at
``BOOTSTRAP_AGENT_MAX_POLL_INTERVAL`` (1 s by default). Two agents are measured side by side:
the default one and a stock one (the ceiling set to 10 s, Prefect's own behaviour). Three ways
a run can meet an agent:

- idle: the agent is in its longest sleep (10 s stock, 1 s by default: it has found nothing
  for a while). Runs are created at evenly spread points of that sleep (0.1, 0.3, ... 0.9 of
  it for 5 runs), as runs arriving at random times would be; the mean wait is then half the
  interval.
- poke: created 1 s after the previous (idle) run succeeded, while the agent sleeps 2-4 s,
  then ``GET /api/poke`` on the agent's address, which ends any sleep at once (what a
  scheduler that knows the agent can do). Waiting for the 10 s sleep first would change
  nothing but the benchmark's duration.
- busy: created the moment the previous run was Submitted, while the agent polls every
  0.25-0.5 s. Consecutive runs overlap, so only their created-to-Submitted time is recorded.

And what LUME users wait on: ten small runs, one after the other, each created and watched
the way LUME-services' ``run_and_return`` does (testbed/lume_services.py: prefect's
``create_flow_run``, ``watch_flow_run``, then the task results through the API), against
both agents.
"""

from __future__ import annotations

import statistics
import time
from typing import Dict, List, Optional

import docker
import requests

from bench.harness import Context
from prefect_api_double import PrefectApiDouble
from testbed.agent_stand import DockerAgentStand
from testbed.docker import Containers
from testbed.flow_runs import flow_run_ids_in, remove_flow_run_containers

FLOW, PARAMETERS = "squares.py", {"n": 1}
STOCK_CEILING = 10.0  # Prefect's own longest sleep
POKE_AFTER = 1.0  # after the previous run succeeded: the agent is in a 2-4 s sleep (stock)
LUME_RUNS = 10
DEFAULT_CEILING = 1.0  # BOOTSTRAP_AGENT_MAX_POLL_INTERVAL's default


class Bench:
    def __init__(self, stand: DockerAgentStand, ceiling: float) -> None:
        self.stand = stand
        self.api = stand.api
        self.ceiling = ceiling
        self.flow_id = ""

    def polls(self) -> List[float]:
        return [request.time for request in self.api.requests_for("get_runs_in_queue")]

    def create(self) -> str:
        return self.stand.run(self.flow_id, parameters=PARAMETERS)

    def poke(self) -> None:
        requests.get(f"http://127.0.0.1:{self.stand.port}/api/poke", timeout=5).raise_for_status()

    def wait_state(self, run_id: str, states=("Success", "Failed", "Cancelled")) -> str:
        return self.api.wait_for_flow_run_state(run_id, states, timeout=180)["state"]

    def long_sleep_started(self, after: float, timeout: float = 60) -> float:
        """Time of the first poll after ``after`` that ended a sleep of the agent's longest
        length, at least twice in a row: the agent has just begun its longest sleep."""
        longest = 0.75 * self.ceiling
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            polls = [poll for poll in self.polls() if poll > after]
            for first, second, third in zip(polls, polls[1:], polls[2:]):
                if second - first >= longest and third - second >= longest:
                    return third
            time.sleep(0.05)
        raise TimeoutError(f"the agent did not reach its {self.ceiling:g} s sleep in {timeout} s")

    def timings(self, run_id: str) -> Dict[str, float]:
        """Seconds from creation (the Scheduled state) to each later state, and to the poll
        that picked the run up."""
        if self.wait_state(run_id) != "Success":
            raise RuntimeError(f"flow run {run_id} did not succeed:\n{self.stand.agent_logs()}")
        states = self.api.flow_run_states(run_id)
        first: Dict[str, float] = {}
        for state in states:
            first.setdefault(state["state"], state["timestamp"].timestamp())
        created = first["Scheduled"]
        picked: Optional[float] = None
        for request in self.api.requests_for("get_runs_in_queue"):
            answer = (request.response or {}).get("data") or {}
            if run_id in (answer.get("get_runs_in_queue") or {}).get("flow_run_ids", []):
                picked = request.time
                break
        if picked is None:
            raise RuntimeError(f"no get_runs_in_queue answer listed flow run {run_id}")
        return {
            "picked": picked - created,
            "submitted": first["Submitted"] - created,
            "running": first["Running"] - created,
            "success": first["Success"] - created,
        }


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def run(ctx: Context) -> None:
    api = PrefectApiDouble().start()
    containers = Containers(docker.from_env(timeout=120))
    try:
        default = _stand(api, containers, ctx.prod_image, None)
        _measure(ctx, default, "")
        default_lume = _lume_runs(default)
        containers.remove_all()
        stock = _stand(api, containers, ctx.prod_image, STOCK_CEILING)
        _measure(ctx, stock, "_stock")
        stock_lume = _lume_runs(stock)
    finally:
        containers.remove_all()
        # the stock agent leaves every container, ours a run's it had not removed yet
        remove_flow_run_containers(containers.client, flow_run_ids_in([api]))
        api.stop()
    ctx.record(
        "flowrun_lume_stock",
        f"{LUME_RUNS} run_and_return calls in a row, stock agent (10 s ceiling)",
        [sum(stock_lume)],
    )
    ctx.record(
        "flowrun_lume",
        f"{LUME_RUNS} run_and_return calls in a row, default agent",
        [sum(default_lume)],
        baseline="flowrun_lume_stock",
        goal="<= 0.33 x stock",
        note="each call: create, watch_flow_run (it looks every 2 s), read the results",
    )


def _stand(api, containers, image: str, ceiling: Optional[float]) -> Bench:
    stand = DockerAgentStand(api, containers, image)
    settings = {"BOOTSTRAP_AGENT_LABELS": "lume,docker,lume-services"}
    if ceiling is not None:
        settings["BOOTSTRAP_AGENT_MAX_POLL_INTERVAL"] = f"{ceiling:g}"
    stand.start_agent(**settings)
    bench = Bench(stand, ceiling or DEFAULT_CEILING)
    bench.flow_id = stand.register(FLOW, labels=["lume-services"])
    return bench


def _lume_runs(bench: Bench) -> List[float]:
    """Seconds of each of LUME_RUNS run_and_return calls made one after the other."""
    from testbed.lume_services import docker_run, run_and_return

    run_config = docker_run(bench.stand.image, "lume", labels=["lume-services"])
    durations = []
    for _ in range(LUME_RUNS):
        started = time.monotonic()
        run_and_return(bench.api.url, bench.stand.tenant_id, bench.flow_id, run_config, PARAMETERS)
        durations.append(time.monotonic() - started)
    print(f"  run_and_return, one by one: {', '.join(f'{d:.1f}' for d in durations)} s")
    return durations


def _measure(ctx: Context, bench: Bench, variant: str) -> None:
    """The latency figures of one agent; ``variant`` is "" (default) or "_stock"."""
    n = ctx.repeat
    # warm-up (not recorded): the first flow-run container of a fresh agent
    warm_up = bench.create()
    bench.poke()
    bench.wait_state(warm_up)

    busy: List[str] = []
    leader = bench.create()
    bench.poke()
    for _ in range(n):
        bench.wait_state(leader, ("Submitted", "Running", "Success", "Failed"))
        leader = bench.create()
        busy.append(leader)
    busy_times = [bench.timings(run_id) for run_id in busy]

    idle_times: List[Dict[str, float]] = []
    poke_times: List[Dict[str, float]] = []
    last = time.time()
    for index in range(n):
        sleep_began = bench.long_sleep_started(after=last)
        _sleep_until(sleep_began + bench.ceiling * (index + 0.5) / n)
        run_id = bench.create()
        idle_times.append(bench.timings(run_id))
        last = time.time()

        # the agent sleeps again (its back-off climbs back from 0.25 s): wake it
        _sleep_until(last + POKE_AFTER)
        run_id = bench.create()
        bench.poke()
        poke_times.append(bench.timings(run_id))
        last = time.time()
    _record(ctx, variant, bench.ceiling, idle_times, poke_times, busy_times)


def _record(ctx, variant, ceiling, idle_times, poke_times, busy_times) -> None:
    def column(times: List[Dict[str, float]], key: str) -> List[float]:
        return [timing[key] for timing in times]

    agent = "stock agent" if variant else "agent"
    if variant:  # the stock agent: idle and poked, against the default agent's poked figure
        ctx.record(
            "flowrun_success_idle_stock",
            f"flow run created to Success, stock agent idle ({ceiling:g} s polls)",
            column(idle_times, "success"),
            baseline="flowrun_success_poke",
        )
        ctx.record(
            "flowrun_success_poke_stock",
            "flow run created to Success, stock agent poked",
            column(poke_times, "success"),
            baseline="flowrun_success_poke",
        )
        ctx.record(
            "flowrun_backoff_idle_stock",
            "poll back-off wait, stock agent idle",
            column(idle_times, "picked"),
            baseline="flowrun_success_idle_stock",
            note="created to the poll that returned the run; ratio = its share of the latency",
        )
        return
    ctx.record(
        "flowrun_success_poke",
        f"flow run created to Success, {agent} poked",
        column(poke_times, "success"),
    )
    ctx.record(
        "flowrun_success_idle",
        f"flow run created to Success, {agent} idle ({ceiling:g} s polls)",
        column(idle_times, "success"),
        baseline="flowrun_success_poke",
        goal="<= 1.5 x poked",
    )
    ctx.record(
        "flowrun_submitted_poke",
        "created to Submitted, agent poked",
        column(poke_times, "submitted"),
    )
    ctx.record(
        "flowrun_submitted_idle",
        f"created to Submitted, agent idle ({ceiling:g} s polls)",
        column(idle_times, "submitted"),
    )
    ctx.record(
        "flowrun_submitted_busy",
        "created to Submitted, agent busy (0.25 s polls)",
        column(busy_times, "submitted"),
    )
    ctx.record(
        "flowrun_backoff_idle",
        "poll back-off wait, agent idle",
        column(idle_times, "picked"),
        baseline="flowrun_success_idle",
        note="created to the poll that returned the run; ratio = its share of the latency",
    )
    ctx.record(
        "flowrun_backoff_busy",
        "poll back-off wait, agent busy",
        column(busy_times, "picked"),
        baseline="flowrun_submitted_busy",
    )
    quiet = idle_times + poke_times  # one flow run at a time
    ctx.record(
        "flowrun_agent_submit",
        "picked up to Submitted (the agent's own work)",
        [t["submitted"] - t["picked"] for t in quiet],
    )
    ctx.record(
        "flowrun_container_start",
        "Submitted to Running (container start, import, flow load)",
        [t["running"] - t["submitted"] for t in quiet],
    )
    ctx.record(
        "flowrun_flow",
        "Running to Success (the flow: 4 tasks)",
        [t["success"] - t["running"] for t in quiet],
    )
    share = statistics.median(t["picked"] / t["success"] for t in idle_times)
    print(f"  poll back-off share of an idle agent's latency (median per run): {share:.0%}")
