"""bootstrap.agent.capacity: the limit of flow runs alive at once, and the rule that a child
of a run this agent runs never waits for a slot its parent holds."""

from __future__ import annotations

import threading

from bootstrap.agent.capacity import Capacity, choose, parent_task_run

TASK_RUN = "0c7e6c2e-1111-4222-8333-944455556666"


def test_no_limit_takes_everything() -> None:
    assert choose(["a", "b", "c"], set(), {"x": False}, 0) == ["a", "b", "c"]


def test_the_limit_takes_the_oldest_first_and_leaves_the_rest() -> None:
    assert choose(["a", "b", "c"], set(), {}, 2) == ["a", "b"]
    assert choose(["a", "b", "c"], set(), {"x": False}, 2) == ["a"]
    assert choose(["a", "b"], set(), {"x": False, "y": False}, 2) == []
    assert choose(["x", "a"], set(), {"x": False}, 2) == ["a"]  # a live run is not started twice


def test_children_of_live_parents_are_admitted_above_the_limit_up_to_as_many_again() -> None:
    live = {"p1": False, "p2": False}  # two parents hold the two slots, waiting on children
    assert choose(["c1", "c2", "o"], {"c1", "c2"}, live, 2) == ["c1", "c2"]
    full = {**live, "c1": True, "c2": True}
    assert choose(["c3", "o"], {"c3"}, full, 2) == []  # the bound: no flood of children
    # children count against the limit too: a finished parent frees no slot while its
    # children still run; a finished child lets the next child in, never another parent
    assert choose(["c3", "o"], {"c3"}, {"p1": False, "c1": True, "c2": True}, 2) == []
    assert choose(["c3", "o"], {"c3"}, {"p1": False, "c2": True}, 2) == ["c3"]
    assert choose(["o", "c3"], {"c3"}, {"c2": True}, 2) == ["o", "c3"]


def test_two_flows_of_flows_at_a_limit_of_two_cannot_deadlock() -> None:
    """Both parents start; each one's child starts although both slots are held."""
    capacity = Capacity(limit=2)
    assert capacity.admit("parent-1", child=False)
    assert capacity.admit("parent-2", child=False)
    assert not capacity.admit("other", child=False)
    assert capacity.admit("child-1", child=True)
    assert capacity.admit("child-2", child=True)
    assert not capacity.admit("child-3", child=True)
    capacity.release("child-1")
    assert capacity.admit("child-3", child=True)


def test_admission_is_atomic_across_deploying_threads() -> None:
    capacity = Capacity(limit=3)
    admitted = []

    def deploy(run_id: str) -> None:
        if capacity.admit(run_id, child=False):
            admitted.append(run_id)

    threads = [threading.Thread(target=deploy, args=(f"run-{i}",)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 3
    assert len(capacity.snapshot()) == 3


def test_the_parent_task_run_from_prefects_idempotency_key() -> None:
    assert parent_task_run(TASK_RUN) == TASK_RUN
    assert parent_task_run(f"{TASK_RUN}-3") == TASK_RUN  # a mapped create_flow_run
    assert parent_task_run("auto-scheduled:2026-01-01T00:00:00+00:00") == (
        "auto-scheduled:2026-01-01T00:00:00+00:00"  # not a task run: no parent found for it
    )
    assert parent_task_run(None) is None
