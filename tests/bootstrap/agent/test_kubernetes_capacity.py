"""bootstrap.agent.kubernetes_capacity: BOOTSTRAP_AGENT_MAX_FLOW_RUNS for the Kubernetes agent,
counted on the agent's Jobs (V1JobList deserialized from API-shaped JSON; no cluster here),
driven through the hooks around prefect's own methods."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List

import kubernetes

from bootstrap.agent.kubernetes_capacity import (
    CHILD_LABEL,
    OWNER_LABEL,
    KubernetesCapacity,
    label_job,
    live_runs,
)
from bootstrap.agent.metrics import Metrics

AGENT = "5f0c1e2a-aaaa-4bbb-8ccc-111122223333"


def jobs(*specs: Dict) -> kubernetes.client.V1JobList:
    items = []
    for spec in specs:
        labels = {"prefect.io/flow_run_id": spec["run"], OWNER_LABEL: AGENT}
        labels[CHILD_LABEL] = "true" if spec.get("child") else "false"
        items.append(
            {
                "metadata": {"name": f"prefect-job-{spec['run']}", "labels": labels},
                "status": spec.get("status", {"active": 1}),
            }
        )
    data = {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}
    return kubernetes.client.ApiClient()._ApiClient__deserialize(data, "V1JobList")


def test_the_runs_alive_are_the_jobs_not_finished() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    found = jobs(
        {"run": "a"},
        {"run": "b", "child": True},
        {"run": "c", "status": {"succeeded": 1}},
        {"run": "d", "status": {"failed": 1, "conditions": [failed]}},
        {"run": "e", "status": {}},  # created, no pod yet: it holds its slot
        {"run": "f", "status": {"failed": 1, "active": 1}},  # a retry of its own template
    )
    assert live_runs(found) == {"a": False, "b": True, "e": False, "f": False}


def test_a_job_carries_its_agent_and_whether_it_is_a_child() -> None:
    job = label_job({"metadata": {"labels": {"prefect.io/flow_run_id": "a"}}}, AGENT, True)
    assert job["metadata"]["labels"] == {
        "prefect.io/flow_run_id": "a",
        OWNER_LABEL: AGENT,
        CHILD_LABEL: "true",
    }
    assert label_job({}, "", False)["metadata"]["labels"][CHILD_LABEL] == "false"


class Cluster:
    """The agent's BatchV1Api as far as the hooks use it: Jobs listed by label or name."""

    def __init__(self) -> None:
        self.jobs: List[Dict] = []
        self.selectors: List[str] = []

    def list_namespaced_job(self, namespace, label_selector=None, field_selector=None):
        self.selectors.append(label_selector or field_selector)
        if field_selector:
            name = field_selector.split("=", 1)[1]
            return jobs(*[j for j in self.jobs if f"prefect-job-{j['run']}" == name])
        return jobs(*self.jobs)


class Api:
    """prefect's Client: no run of these has a parent (two empty queries)."""

    _attached_headers = {"X-PREFECT-AGENT-ID": AGENT}

    def graphql(self, query, variables=None):
        return {"data": {"flow_run": [], "task_run": []}}


def run(run_id: str, minute: int):
    return SimpleNamespace(id=run_id, scheduled_start_time=f"2026-12-07T10:{minute:02d}:00")


def hooked(limit: int, cluster: Cluster):
    capacity = KubernetesCapacity(limit, Metrics("kubernetes", {}))
    agent = SimpleNamespace(batch_client=cluster, namespace="prefect", client=Api())
    polled = capacity.limited(lambda agent, ids: [run(i, n) for n, i in enumerate(ids)])

    def deploy(agent, flow_run):
        cluster.jobs.append({"run": flow_run.id})

    deployed = capacity.admitted(deploy)
    return capacity, agent, polled, deployed


def test_the_limit_counts_the_clusters_jobs_and_leaves_the_rest_scheduled() -> None:
    cluster = Cluster()
    cluster.jobs = [{"run": "old"}]  # left by the agent's previous pod, still running
    capacity, agent, polled, deployed = hooked(2, cluster)
    chosen = polled(agent, ["r1", "r2", "r3"])
    assert [r.id for r in chosen] == ["r1"]  # one slot free: the oldest
    assert f"{OWNER_LABEL}={AGENT}" in cluster.selectors
    deployed(agent, chosen[0])
    assert deployed(agent, run("r2", 2)) is None
    assert len(cluster.jobs) == 2  # no slot: no Job
    assert capacity.metrics.waiting_for_slot._value.get() == 2
    cluster.jobs[0]["status"] = {"succeeded": 1}  # the old run finished
    assert [r.id for r in polled(agent, ["r2", "r3"])] == ["r2"]


def test_a_deploy_that_made_no_job_gives_its_slot_back() -> None:
    cluster = Cluster()
    capacity, agent, polled, _ = hooked(1, cluster)

    def failing(agent, flow_run):
        return None  # prefect marked it Failed (a refused run, an API error): no Job

    deploy = capacity.admitted(failing)
    deploy(agent, polled(agent, ["r1"])[0])
    assert capacity.capacity.snapshot() == {}
    assert [r.id for r in polled(agent, ["r2"])] == ["r2"]


def test_a_job_being_created_holds_its_slot_before_the_cluster_lists_it() -> None:
    cluster = Cluster()
    capacity, agent, polled, _ = hooked(1, cluster)
    assert capacity.capacity.admit("r1", child=False)  # deploying, no Job listed yet
    assert polled(agent, ["r2"]) == []
    capacity.capacity.deployed("r1", created=False)
    assert [r.id for r in polled(agent, ["r2"])] == ["r2"]


def test_a_job_created_while_the_cluster_is_listed_keeps_its_slot() -> None:
    """The listing began before r1's Job existed and ended after its deploy did: r1 is in
    neither the listing nor the runs being deployed, and still holds its slot."""
    cluster = Cluster()
    capacity, agent, polled, _ = hooked(1, cluster)
    since = capacity.capacity.listing()
    assert capacity.capacity.admit("r1", child=False)
    cluster.jobs.append({"run": "r1"})
    capacity.capacity.deployed("r1", created=True)
    capacity.capacity.sync(live_runs(jobs()), since)  # the listing taken before r1's Job
    assert capacity.capacity.snapshot() == {"r1": False}
    assert polled(agent, ["r2"]) == []  # the next poll lists r1's Job: still full


def test_a_deploy_that_ends_while_the_cluster_is_listed_keeps_its_slot() -> None:
    """r1 is being deployed when the listing begins, its Job is created after the list was
    served, and its deploy ends before the listing is taken in: it keeps its slot."""
    cluster = Cluster()
    capacity = hooked(1, cluster)[0]
    assert capacity.capacity.admit("r1", child=False)
    since = capacity.capacity.listing()
    listed = live_runs(jobs())  # served before r1's Job existed
    cluster.jobs.append({"run": "r1"})
    capacity.capacity.deployed("r1", created=True)
    capacity.capacity.sync(listed, since)
    assert capacity.capacity.snapshot() == {"r1": False}
    failed = KubernetesCapacity(1, Metrics("kubernetes", {})).capacity
    assert failed.admit("r2", child=False)
    since = failed.listing()
    failed.deployed("r2", created=False)  # refused, no Job: the slot goes back
    failed.sync({}, since)
    assert failed.snapshot() == {}
