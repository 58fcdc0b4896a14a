"""Flow-run latency with the Docker agent in the prod image (the e2e stand), and how much of it
is the agent's poll back-off.

The end-to-end stand (tests.fixtures.agent_stand.DockerAgentStand): the agent container against the
API double, a trivial flow (tests/e2e/flows/squares.py, n=1: four tiny tasks) stored as a script
mounted into the flow-run containers, which run from the same image on the host network.

Every time comes from the double, on the host's clock: the run's state timestamps (Scheduled
when created, Submitted by the agent, Running and Success by the flow-run container) and the
time of the agent's ``get_runs_in_queue`` poll that first returned the run ("picked up").

Prefect 1.x agents sleep 0.25, 0.5, 1, 2, 4, 8 and then 10 s between polls that find nothing,
and go back to 0.25 s when one finds work. Three ways a run can meet the agent:

- idle: the agent is in its 10 s sleep (it has found nothing for 16 s). Runs are created at
  evenly spread points of that sleep (0.1, 0.3, ... 0.9 of it for 5 runs), as runs arriving
  at random times would be; the mean wait is then half the interval.
- poke: created 1 s after the previous (idle) run succeeded, while the agent sleeps 2-4 s,
  then ``GET /api/poke`` on the agent's address, which ends any sleep at once (what a
  scheduler that knows the agent can do). Waiting for the 10 s sleep first would change
  nothing but the benchmark's duration.
- busy: created the moment the previous run was Submitted, while the agent polls every
  0.25-0.5 s. Consecutive runs overlap, so only their created-to-Submitted time is recorded.
"""

from __future__ import annotations

import statistics
import time
from typing import Dict, List, Optional

import docker
import requests

from bench.harness import Context
from tests.fixtures.agent_stand import DockerAgentStand
from tests.fixtures.docker import Containers
from tests.prefect_api_double import PrefectApiDouble

FLOW, PARAMETERS = "squares.py", {"n": 1}
LONG_SLEEP = 10.0
ENDS_A_LONG_SLEEP = 7.5  # a poll after a gap this long ended the 8 s (or 10 s) sleep
POKE_AFTER = 1.0  # after the previous run succeeded: the agent is in a 2-4 s sleep


class Bench:
    def __init__(self, stand: DockerAgentStand) -> None:
        self.stand = stand
        self.api = stand.api
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
        """Time of the first poll after ``after`` that ended a sleep of 8 s or more: the agent
        has just begun a 10 s sleep."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            polls = self.polls()
            for previous, poll in zip(polls, polls[1:]):
                if poll > after and poll - previous >= ENDS_A_LONG_SLEEP:
                    return poll
            time.sleep(0.05)
        raise TimeoutError(f"the agent did not reach its {LONG_SLEEP:g} s sleep in {timeout} s")

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
        stand = DockerAgentStand(api, containers, ctx.prod_image)
        stand.start_agent()
        bench = Bench(stand)
        bench.flow_id = stand.register(FLOW)
        _measure(ctx, bench)
    finally:
        containers.remove_all()
        api.stop()


def _measure(ctx: Context, bench: Bench) -> None:
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
        _sleep_until(sleep_began + LONG_SLEEP * (index + 0.5) / n)
        run_id = bench.create()
        idle_times.append(bench.timings(run_id))
        last = time.time()

        # the agent sleeps again (its back-off climbs back from 0.25 s): wake it
        _sleep_until(last + POKE_AFTER)
        run_id = bench.create()
        bench.poke()
        poke_times.append(bench.timings(run_id))
        last = time.time()

    def column(times: List[Dict[str, float]], key: str) -> List[float]:
        return [timing[key] for timing in times]

    ctx.record(
        "flowrun_success_poke",
        "flow run created to Success, agent poked",
        column(poke_times, "success"),
    )
    ctx.record(
        "flowrun_success_idle",
        "flow run created to Success, agent idle",
        column(idle_times, "success"),
        baseline="flowrun_success_poke",
    )
    ctx.record(
        "flowrun_submitted_poke",
        "created to Submitted, agent poked",
        column(poke_times, "submitted"),
    )
    ctx.record(
        "flowrun_submitted_idle",
        "created to Submitted, agent idle (10 s polls)",
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
