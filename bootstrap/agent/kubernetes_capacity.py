"""``BOOTSTRAP_AGENT_MAX_FLOW_RUNS`` for the Kubernetes agent: the same rule as Docker's
(:mod:`.capacity`), counted on the cluster.

Every Job the agent creates carries its agent id and whether its run is a child of one of
its live runs (:func:`label_job`). At each poll the agent lists its Jobs that have not
finished (one ``list`` of Jobs by label, a verb its Role has already) and takes that as the
runs alive: a Job deleted by hand, finished, or left by the agent's previous pod counts as
the cluster says, and an agent restarted mid-flood stays within the limit.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

from bootstrap.agent.capacity import Capacity, admissible
from bootstrap.agent.hooks import agent_id
from bootstrap.agent.kubernetes_runs import RUN_LABEL

logger = logging.getLogger("bootstrap.agent")
OWNER_LABEL = "prefect-agent.lume-services.org/agent-id"
CHILD_LABEL = "prefect-agent.lume-services.org/child"


def finished(job: Any) -> bool:
    """A Job is done when Kubernetes says so (its Complete or Failed condition): a failed pod
    of a template with retries (backoffLimit > 0) is not the end of it."""
    status = job.status
    if status is None:
        return False
    done = [c for c in status.conditions or [] if c.type in ("Complete", "Failed")]
    if done:
        return any(condition.status == "True" for condition in done)
    return bool(status.succeeded)


def live_runs(jobs: Any) -> Dict[str, bool]:
    """Run id -> a child, for the Jobs (a V1JobList) that have not finished."""
    live: Dict[str, bool] = {}
    for job in jobs.items:
        labels = job.metadata.labels or {}
        if RUN_LABEL in labels and not finished(job):
            live[labels[RUN_LABEL]] = labels.get(CHILD_LABEL) == "true"
    return live


def label_job(job: Dict[str, Any], owner: str, child: bool) -> Dict[str, Any]:
    """The Job, labelled with its agent and whether its run is a child (label values: the
    agent id is a UUID, or empty before registration)."""
    labels = job.setdefault("metadata", {}).setdefault("labels", {})
    labels[OWNER_LABEL] = owner
    labels[CHILD_LABEL] = "true" if child else "false"
    return job


class KubernetesCapacity:
    """Hooks of prefect's KubernetesAgent enforcing the limit (each takes prefect's method
    and returns its replacement)."""

    def __init__(self, limit: int, metrics: Any) -> None:
        self.capacity = Capacity(limit)
        self.metrics = metrics
        self.children: set = set()

    def install(self) -> None:
        from prefect.agent.kubernetes import KubernetesAgent

        from bootstrap.agent.hooks import wrap

        wrap(KubernetesAgent, "generate_job_spec", self.labelled)
        if self.capacity.limit > 0:
            wrap(KubernetesAgent, "_get_flow_run_metadata", self.limited)
            wrap(KubernetesAgent, "_deploy_flow_run", self.admitted)

    def sync(self, agent: Any) -> None:
        since = self.capacity.listing()
        jobs = agent.batch_client.list_namespaced_job(
            namespace=agent.namespace, label_selector=f"{OWNER_LABEL}={agent_id(agent)}"
        )
        self.capacity.sync(live_runs(jobs), since)

    def labelled(self, original):
        def generate_job_spec(agent, flow_run, *args, **kwargs):
            job = original(agent, flow_run, *args, **kwargs)
            return label_job(job, agent_id(agent), flow_run.id in self.children)

        return generate_job_spec

    def limited(self, original):
        def _get_flow_run_metadata(agent, flow_run_ids, *args, **kwargs):
            flow_runs = original(agent, flow_run_ids, *args, **kwargs)
            if not flow_runs:
                return flow_runs
            self.sync(agent)  # an error here is the poll's: prefect logs it and polls again
            chosen, self.children = admissible(agent.client, flow_runs, self.capacity)
            self.metrics.capacity(self.capacity, waiting=len(flow_runs) - len(chosen))
            return chosen

        return _get_flow_run_metadata

    def admitted(self, original):
        def _deploy_flow_run(agent, flow_run, *args, **kwargs):
            if not self.capacity.admit(flow_run.id, child=flow_run.id in self.children):
                logger.info("Flow run %s waits for a slot", flow_run.id)
                return None
            created = False
            try:
                result = original(agent, flow_run, *args, **kwargs)
                created = _job_exists(agent, flow_run.id)
                return result
            finally:
                self.capacity.deployed(flow_run.id, created)

        return _deploy_flow_run


def _job_exists(agent: Any, flow_run_id: str) -> bool:
    from bootstrap.agent.kubernetes_runs import job_name

    try:
        found = agent.batch_client.list_namespaced_job(
            namespace=agent.namespace, field_selector=f"metadata.name={job_name(flow_run_id)}"
        )
    except Exception:  # the next poll's sync counts it if it exists
        return True
    return bool(found.items)
