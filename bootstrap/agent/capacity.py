"""How many flow runs the agent keeps alive at once (``BOOTSTRAP_AGENT_MAX_FLOW_RUNS``), with
one rule for flows of flows: a child run, created by a parent that this agent runs, does not
wait for a slot its parent holds. Children are admitted above the limit, up to as many again
(``limit`` extra slots, children only): a parent waiting on its child cannot deadlock the
agent, and a fan-out of children cannot flood the host.

Runs beyond the limit are not deployed: they stay Scheduled in the API (not Submitted), so
Lazarus and other agents see them as they are, and the next polls take them, oldest first
(the API's queue order). When nothing can be admitted, the poll reports no runs, so the agent
backs off instead of asking the API four times a second.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

_MAPPED_KEY = re.compile(r"^(?P<task_run>[0-9a-f-]{36})-\d+$")


def parent_task_run(idempotency_key: Optional[str]) -> Optional[str]:
    """The task run that created a child run: prefect's ``create_flow_run`` task uses its own
    task run id as the child's idempotency key (``<id>-<map index>`` when mapped)."""
    if not idempotency_key:
        return None
    match = _MAPPED_KEY.match(idempotency_key)
    return match.group("task_run") if match else idempotency_key


def choose(
    queue: Sequence[str],
    children: Set[str],
    live: Mapping[str, bool],
    limit: int,
) -> List[str]:
    """Which runs of ``queue`` (oldest first) to deploy now. ``children``: the queued runs
    whose parent is alive under this agent; ``live``: run id -> is a child, for the runs
    alive now. ``limit`` 0: every run."""
    if limit <= 0:
        return list(queue)
    parents = sum(1 for child in live.values() if not child)
    kids = len(live) - parents
    chosen = []
    for run_id in queue:
        if run_id in live:
            continue  # started already (a run Running with a retrying task comes back)
        if parents + kids < limit:
            chosen.append(run_id)
            kids += run_id in children
            parents += run_id not in children
        elif run_id in children and kids < limit:
            chosen.append(run_id)
            kids += 1
    return chosen


@dataclass
class Capacity:
    """The agent's flow runs alive now, as it started them and saw them exit."""

    limit: int = 0
    live: Dict[str, bool] = field(default_factory=dict)  # run id -> a child
    deploying: Set[str] = field(default_factory=set)  # admitted, deploy not ended yet
    admitted_at: Dict[str, int] = field(default_factory=dict)  # run id -> admission number
    admissions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, run_id: str, child: bool) -> bool:
        """Take a slot for ``run_id`` if the rule allows it now (atomically)."""
        with self.lock:
            if self.limit <= 0 or run_id in self.live:
                self.live.setdefault(run_id, child)
            elif choose([run_id], {run_id} if child else set(), self.live, self.limit):
                self.live[run_id] = child
            else:
                return False
            self.deploying.add(run_id)
            self.admissions += 1
            self.admitted_at[run_id] = self.admissions
            return True

    def hold(self, run_id: str) -> None:
        """Count a run found running (at start), whatever the limit."""
        with self.lock:
            self.live.setdefault(run_id, False)

    def release(self, run_id: str) -> None:
        with self.lock:
            self.live.pop(run_id, None)
            self.deploying.discard(run_id)
            self.admitted_at.pop(run_id, None)

    def deployed(self, run_id: str, created: bool) -> None:
        """The deploy of an admitted run ended: keep its slot if it made its container or
        Job, give it back otherwise."""
        with self.lock:
            self.deploying.discard(run_id)
            if not created:
                self.live.pop(run_id, None)
                self.admitted_at.pop(run_id, None)

    def listing(self) -> Tuple[int, frozenset]:
        """Call before listing what is alive; hand what it returns to :meth:`sync`."""
        with self.lock:
            return self.admissions, frozenset(self.deploying)

    def sync(self, found: Mapping[str, bool], since: Tuple[int, frozenset]) -> None:
        """Take what the cluster said is alive (run id -> a child; listed after
        :meth:`listing` returned ``since``) as the truth, keeping the runs that were being
        deployed when the listing began or still are, and those admitted since (their Job
        may be missing from it). A deploy that made nothing has left ``live`` already."""
        admissions, deploying_then = since
        with self.lock:
            recent = {
                run: self.live[run]
                for run, number in self.admitted_at.items()
                if run in self.live
                and (run in self.deploying or run in deploying_then or number > admissions)
            }
            self.live = {**found, **recent}
            self.admitted_at = {
                run: number for run, number in self.admitted_at.items() if run in self.live
            }

    def snapshot(self) -> Dict[str, bool]:
        with self.lock:
            return dict(self.live)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEYS = (
    "query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) { id idempotency_key } }"
)
TASK_RUN_PARENTS = "query($ids: [uuid!]) { task_run(where: {id: {_in: $ids}}) { id flow_run_id } }"


def children_of(client, run_ids: Sequence[str], live: Set[str]) -> Set[str]:
    """The runs of ``run_ids`` whose parent flow run is one of ``live`` (two API queries)."""
    if not run_ids or not live:
        return set()
    rows = client.graphql(IDEMPOTENCY_KEYS, variables={"ids": list(run_ids)})["data"]["flow_run"]
    creators = {row["id"]: parent_task_run(row["idempotency_key"]) for row in rows}
    task_runs = sorted({key for key in creators.values() if key and _UUID.match(key)})
    if not task_runs:
        return set()
    found = client.graphql(TASK_RUN_PARENTS, variables={"ids": task_runs})["data"]["task_run"]
    parent_of = {row["id"]: row["flow_run_id"] for row in found}
    return {run for run, key in creators.items() if parent_of.get(key or "") in live}


def admissible(client: Any, flow_runs: list, capacity: Capacity) -> Tuple[list, Set[str]]:
    """The runs of a poll (prefect's flow-run records) that the limit admits now, oldest
    first, and the ids of the poll's runs whose parent is alive under this agent."""
    flow_runs = sorted(flow_runs, key=lambda run: str(run.scheduled_start_time))
    ids = [run.id for run in flow_runs]
    live = capacity.snapshot()
    children = children_of(client, ids, set(live))
    chosen = set(choose(ids, children, live, capacity.limit))
    return [run for run in flow_runs if run.id in chosen], children
