"""The Kubernetes agent owns the Jobs it creates.

- One Job per flow run: its name is the run id, so a second agent (or a second try of the
  same agent) gets ``409 AlreadyExists``, which prefect's ``deploy_flow`` takes as "already
  submitted": the run never runs twice.
- Each pass of prefect's ``manage_jobs`` is followed by one of ours over the Jobs of runs
  that are not finished: a Job Kubernetes cannot create pods for (``FailedCreate``: a quota,
  an admission webhook, a missing service account), a pod ``Pending`` past a limit
  (unschedulable, a volume that never mounts) and a flow container that terminated (an OOM
  kill) end the run Failed with Kubernetes' own reason, and the Job is deleted. Prefect 1.2.4
  catches only image-pull errors and leaves the rest Submitted.

The decisions (:func:`job_failure`) take the Kubernetes client's own objects.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Iterable, List, Optional

logger = logging.getLogger("bootstrap.agent")
RUN_LABEL = "prefect.io/flow_run_id"
JOB_PREFIX = "prefect-job-"
PENDING_LIMIT = 600.0  # seconds a flow-run pod may stay Pending (image pulls included)
FINISHED_STATES = ("Success", "Failed", "Cancelled", "Skipped", "TimedOut", "TriggerFailed")


def job_name(flow_run_id: str) -> str:
    return f"{JOB_PREFIX}{flow_run_id}"  # 48 characters: a valid Job name


def _age(since: Optional[datetime.datetime], now: datetime.datetime) -> float:
    return (now - since).total_seconds() if since is not None else 0.0


def _latest(events: Iterable[Any], reasons: Iterable[str] = ()) -> Optional[Any]:
    wanted = set(reasons)
    chosen = [e for e in events if not wanted or e.reason in wanted]
    stamp = lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp  # noqa: E731
    return max(chosen, key=stamp, default=None)


def job_failure(
    job: Any,
    pods: List[Any],
    events: List[Any],
    now: datetime.datetime,
    pending_limit: float = PENDING_LIMIT,
) -> Optional[str]:
    """Why the flow run of ``job`` (a V1Job) cannot go on, or None. ``pods``: its V1Pods;
    ``events``: the CoreV1Events about the Job and its pods."""
    name = job.metadata.name
    job_events = [e for e in events if e.involved_object.kind == "Job"]
    failed_create = _latest(job_events, ["FailedCreate"])
    if failed_create is not None and not pods:
        return (
            f"Kubernetes could not create the flow-run pod of Job {name}: {failed_create.message}"
        )
    for pod in pods:
        for status in pod.status.container_statuses or []:
            terminated = status.state.terminated if status.state else None
            if terminated is not None and terminated.exit_code:
                reason = f" ({terminated.reason})" if terminated.reason else ""
                return (
                    f"flow-run pod {pod.metadata.name} container {status.name} exited "
                    f"{terminated.exit_code}{reason}"
                    + (
                        "; out of memory: raise its memory limit"
                        if reason == " (OOMKilled)"
                        else ""
                    )
                )
        if pod.status.phase == "Pending":
            waited = _age(pod.metadata.creation_timestamp, now)
            if waited >= pending_limit:
                pod_events = [e for e in events if e.involved_object.name == pod.metadata.name]
                last = _latest(pod_events)
                why = f": {last.reason}: {last.message}" if last is not None else ""
                return f"flow-run pod {pod.metadata.name} stayed Pending for {waited:.0f} s{why}"
    return None


def run_as_runtime_user(job: dict, image: Optional[str], uid: int) -> dict:
    """Containers of this image (``image``, kubernetes_image, compared as written) that must
    not run as root (``runAsNonRoot``, theirs or the pod's) but are given no user: give them
    the runtime user (kubernetes_run_as_user). The image's USER is root, which the kubelet
    refuses to start ("image will run as root"); the agent's own template names the user
    already, a run's own ``job_template`` may not. Containers of other images (a sidecar),
    and any in a pod or container naming its user, as they are."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    context = pod.get("securityContext") or {}
    if image is None or "runAsUser" in context:
        return job
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        own = container.get("securityContext") or {}
        if container.get("image") != image or "runAsUser" in own:
            continue
        if own.get("runAsNonRoot", context.get("runAsNonRoot")):
            container["securityContext"] = {**own, "runAsUser": uid}
    return job


def clear_finished_job(agent: Any, name: str, wait: float = 30.0) -> None:
    """A finished Job of an earlier attempt of the same run (kept: kubernetes_delete_finished_jobs
    off) would make prefect take the new attempt as submitted: delete it first."""
    import time

    import kubernetes

    # A list by name, not a read: the agent's Role lists Jobs already and needs no "get".
    def find() -> List[Any]:
        return agent.batch_client.list_namespaced_job(
            namespace=agent.namespace, field_selector=f"metadata.name={name}"
        ).items

    found = find()
    if not found or not (found[0].status.succeeded or found[0].status.failed):
        return  # none, or live: this run is started already, and 409 says so
    body = kubernetes.client.V1DeleteOptions(propagation_policy="Foreground")
    agent.batch_client.delete_namespaced_job(name=name, namespace=agent.namespace, body=body)
    deadline = time.monotonic() + wait
    while find() and time.monotonic() < deadline:
        time.sleep(1)


class JobChecks:
    """Our pass after each of prefect's ``manage_jobs`` (see the module)."""

    def __init__(self, agent: Any, pending_limit: float = PENDING_LIMIT) -> None:
        self.agent = agent
        self.pending_limit = pending_limit

    def run(self) -> List[str]:
        """Fail the runs whose Job cannot go on; their ids."""
        failed = []
        agent = self.agent
        jobs = agent.batch_client.list_namespaced_job(
            namespace=agent.namespace, label_selector=RUN_LABEL
        )
        for job in jobs.items:
            if job.status.succeeded or job.status.failed:
                continue  # prefect's own pass reports and deletes those
            try:
                if self.check(job):
                    failed.append(job.metadata.labels[RUN_LABEL])
            except Exception as exc:  # one Job's trouble (its run deleted) must not stop the rest
                logger.warning("Checking Job %s: %s", job.metadata.name, exc)
        return failed

    def check(self, job: Any) -> bool:
        """Fail the run of ``job`` if it cannot go on; True if so."""
        run_id = job.metadata.labels[RUN_LABEL]
        if self.agent.client.get_flow_run_state(run_id).is_finished():
            return False
        pods = self._pods(job)
        message = job_failure(job, pods, self._events(job, pods), _now(), self.pending_limit)
        if message is None:
            return False
        self._fail(run_id, message)
        self._delete(job.metadata.name)
        return True

    def _pods(self, job: Any) -> List[Any]:
        selector = f"job-name={job.metadata.name}"
        return self.agent.core_client.list_namespaced_pod(
            namespace=self.agent.namespace, label_selector=selector
        ).items

    def _events(self, job: Any, pods: List[Any]) -> List[Any]:
        """The events about the Job and its pods (one field-selected list each)."""
        events: List[Any] = []
        for name in [job.metadata.name, *(pod.metadata.name for pod in pods)]:
            events += self.agent.core_client.list_namespaced_event(
                namespace=self.agent.namespace, field_selector=f"involvedObject.name={name}"
            ).items
        return events

    def _fail(self, run_id: str, message: str) -> None:
        from prefect.engine.state import Failed

        logger.error("Flow run %s: %s", run_id, message)
        self.agent.client.write_run_logs(
            [{"flow_run_id": run_id, "name": "prefect-agent", "level": "ERROR", "message": message}]
        )
        self.agent.client.set_flow_run_state(flow_run_id=run_id, state=Failed(message))

    def _delete(self, name: str) -> None:
        import kubernetes

        body = kubernetes.client.V1DeleteOptions(propagation_policy="Foreground")
        self.agent.batch_client.delete_namespaced_job(
            name=name, namespace=self.agent.namespace, body=body
        )


def install(metrics: Any, config: Any) -> None:
    """Hook prefect's KubernetesAgent (``config``: the launcher's LauncherConfig): one Job
    per flow run, our checks after its own, and the limit of runs alive at once
    (:mod:`.kubernetes_capacity`)."""
    from prefect.agent.kubernetes import KubernetesAgent

    from bootstrap.agent.hooks import describe_error, wrap
    from bootstrap.agent.kubernetes_capacity import KubernetesCapacity

    def named(original):
        def generate_job_spec(agent, flow_run, *args, **kwargs):
            job = original(agent, flow_run, *args, **kwargs)
            job["metadata"]["name"] = job_name(flow_run.id)
            return run_as_runtime_user(job, config.kubernetes_image, config.kubernetes_run_as_user)

        return generate_job_spec

    def deploy(original):
        def deploy_flow(agent, flow_run, *args, **kwargs):
            clear_finished_job(agent, job_name(flow_run.id))
            return original(agent, flow_run, *args, **kwargs)

        return deploy_flow

    def manage(original):
        def manage_jobs(agent, *args, **kwargs):
            result = original(agent, *args, **kwargs)
            try:
                for _ in JobChecks(agent).run():
                    metrics.runs_ended.labels("job-failed").inc()
            except Exception as exc:  # a check must not stop prefect's heartbeat loop
                logger.warning("Checking the flow-run Jobs: %s", describe_error(exc))
            return result

        return manage_jobs

    wrap(KubernetesAgent, "generate_job_spec", named)
    wrap(KubernetesAgent, "deploy_flow", deploy)
    wrap(KubernetesAgent, "manage_jobs", manage)
    KubernetesCapacity(config.max_flow_runs, metrics).install()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
