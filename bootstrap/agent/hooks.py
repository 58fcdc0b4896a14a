"""Where the launcher reaches into prefect's agent (prefect 1.2.4's ``prefect.agent.Agent``).

Each hook wraps one method of the base class that every agent type inherits and calls the
original: the poll (``_get_ready_flow_runs``), the runs it found
(``_get_flow_run_metadata``), a deployment (``_deploy_flow_run`` with its
``_mark_flow_as_submitted`` / ``_mark_flow_as_failed``), registration
(``_setup_api_connection``) and the health server (``_start_agent_api_server``, replaced by
:mod:`bootstrap.agent.health_server`). The poll ceiling is prefect's own back-off table, capped.

The flow-run policy (:mod:`bootstrap.agent.policy`) hooks where each agent type turns a
run into something real: ``DockerAgent.deploy_flow`` and ``KubernetesAgent.generate_job_spec``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from bootstrap.agent import health_server
from bootstrap.agent.config import LauncherConfig, poll_intervals
from bootstrap.agent.liveness import AgentHealth
from bootstrap.agent.metrics import Metrics
from bootstrap.agent.policy import Policy, PolicyRefusal, check_host_config, check_job

logger = logging.getLogger("bootstrap.agent")


def describe_error(exc: BaseException) -> str:
    """One short line for an error, without the URLs and bodies prefect puts in messages."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _wrap(cls: Any, name: str, wrapper: Callable[[Callable], Callable]) -> None:
    original = getattr(cls, name)
    setattr(cls, name, functools.wraps(original)(wrapper(original)))


def install(agent_class: Any, config: LauncherConfig, health: AgentHealth, metrics: Metrics):
    """Hook ``agent_class`` (prefect.agent.Agent) for this process."""
    agent_class._loop_intervals = poll_intervals(
        agent_class._loop_intervals, config.max_poll_interval
    )
    hooks = AgentHooks(health, metrics)
    _wrap(agent_class, "_setup_api_connection", hooks.setup)
    _wrap(agent_class, "_get_ready_flow_runs", hooks.poll)
    _wrap(agent_class, "_get_flow_run_metadata", hooks.metadata)
    _wrap(agent_class, "_deploy_flow_run", hooks.deploy)
    _wrap(agent_class, "_mark_flow_as_submitted", hooks.submitted)
    _wrap(agent_class, "_mark_flow_as_failed", hooks.failed)

    def api_server(self) -> None:
        health_server.start(self, config, health)

    agent_class._start_agent_api_server = api_server
    if config.agent_type == "docker":
        supervise_docker_runs(config, metrics)
    elif config.agent_type == "kubernetes":
        supervise_kubernetes_jobs(metrics)


def supervise_kubernetes_jobs(metrics: Metrics) -> None:
    """One Job per flow run, and our checks after prefect's (bootstrap.agent.kubernetes_runs)."""
    from prefect.agent.kubernetes import KubernetesAgent

    from bootstrap.agent import kubernetes_runs

    def named(original):
        def generate_job_spec(agent, flow_run, *args, **kwargs):
            job = original(agent, flow_run, *args, **kwargs)
            job["metadata"]["name"] = kubernetes_runs.job_name(flow_run.id)
            return job

        return generate_job_spec

    def deploy(original):
        def deploy_flow(agent, flow_run, *args, **kwargs):
            kubernetes_runs.clear_finished_job(agent, kubernetes_runs.job_name(flow_run.id))
            return original(agent, flow_run, *args, **kwargs)

        return deploy_flow

    def manage(original):
        def manage_jobs(agent, *args, **kwargs):
            result = original(agent, *args, **kwargs)
            try:
                for _ in kubernetes_runs.JobChecks(agent).run():
                    metrics.runs_ended.labels("job-failed").inc()
            except Exception as exc:  # a check must not stop prefect's heartbeat loop
                logger.warning("Checking the flow-run Jobs: %s", describe_error(exc))
            return result

        return manage_jobs

    _wrap(KubernetesAgent, "generate_job_spec", named)
    _wrap(KubernetesAgent, "deploy_flow", deploy)
    _wrap(KubernetesAgent, "manage_jobs", manage)


def supervise_docker_runs(config: LauncherConfig, metrics: Metrics) -> None:
    """The Docker agent creates containers it owns, and follows them once they run
    (:mod:`bootstrap.agent.docker_runs`), from its registration on."""
    import docker
    from prefect.agent.docker import DockerAgent

    from bootstrap.agent.docker_runs import DockerRuns, already_taken, own_docker_client

    def client(original):
        def _get_docker_client(agent, *args, **kwargs):
            return own_docker_client(agent, original(agent, *args, **kwargs))

        return _get_docker_client

    def ended(reason: str, exit_code: Optional[int]) -> None:
        metrics.runs_ended.labels(reason).inc()
        if exit_code is not None:
            metrics.container_exits.labels(str(exit_code)).inc()

    def setup(original):
        def _setup_api_connection(agent, *args, **kwargs):
            result = original(agent, *args, **kwargs)
            engine = docker.APIClient(base_url=agent.base_url, version="auto", timeout=60)
            runs = DockerRuns(agent, engine, config.failed_container_retention, ended)
            runs._safely(runs.reconcile)  # before the first poll: nothing of this life is deployed
            runs.start()
            agent._docker_runs = runs
            return result

        return _setup_api_connection

    def once(original):
        def _deploy_flow_run(agent, flow_run, *args, **kwargs):
            # Before prefect marks it Submitted again: another agent may have taken the run
            # since the poll (the engine's one-name-per-run check at creation is the last
            # guard; this one also keeps the lost race out of the run's state history).
            reason = already_taken(agent, flow_run.id)
            if reason is not None:
                logger.info("Flow run %s not deployed: %s", flow_run.id, reason)
                return None
            return original(agent, flow_run, *args, **kwargs)

        return _deploy_flow_run

    _wrap(DockerAgent, "_get_docker_client", client)
    _wrap(DockerAgent, "_setup_api_connection", setup)
    _wrap(DockerAgent, "_deploy_flow_run", once)


class AgentHooks:
    """Wrappers of the agent's methods feeding the health state and the metrics: each takes
    prefect's method and returns its replacement."""

    def __init__(self, health: AgentHealth, metrics: Metrics) -> None:
        self.health = health
        self.metrics = metrics
        self.found: Dict[str, float] = {}  # flow run id -> when a poll found it
        self.deployment = threading.local()  # per deploying thread: what happened to its run

    def setup(self, original):
        def _setup_api_connection(agent, *args, **kwargs):
            result = original(agent, *args, **kwargs)
            self.health.registered()
            return result

        return _setup_api_connection

    def poll(self, original):
        def _get_ready_flow_runs(agent, *args, **kwargs):
            self.health.poll_started()
            try:
                flow_run_ids = original(agent, *args, **kwargs)
            except Exception as exc:
                self.health.poll_failed(describe_error(exc))
                self.metrics.polls.labels("failure").inc()
                raise
            self.health.poll_succeeded()
            self.metrics.polls.labels("success").inc()
            self.metrics.last_success.set_to_current_time()
            return flow_run_ids

        return _get_ready_flow_runs

    def metadata(self, original):
        def _get_flow_run_metadata(agent, *args, **kwargs):
            flow_runs = original(agent, *args, **kwargs)
            now = time.monotonic()
            for flow_run in flow_runs:
                self.found.setdefault(flow_run.id, now)
            return flow_runs

        return _get_flow_run_metadata

    def deploy(self, original):
        def _deploy_flow_run(agent, flow_run, *args, **kwargs):
            self.deployment.submitted = self.deployment.failed = False
            try:
                return original(agent, flow_run, *args, **kwargs)
            finally:
                since = self.found.pop(flow_run.id, None)
                if self.deployment.failed:
                    self.metrics.deploy_failures.inc()
                elif self.deployment.submitted:
                    self.metrics.submitted.inc()
                    if since is not None:
                        self.metrics.submission_seconds.observe(time.monotonic() - since)

        return _deploy_flow_run

    def submitted(self, original):
        def _mark_flow_as_submitted(agent, *args, **kwargs):
            result = original(agent, *args, **kwargs)
            self.deployment.submitted = True
            return result

        return _mark_flow_as_submitted

    def failed(self, original):
        def _mark_flow_as_failed(agent, *args, **kwargs):
            self.deployment.failed = True
            return original(agent, *args, **kwargs)

        return _mark_flow_as_failed


def install_policy(agent_type: str, policy: Policy) -> None:
    """Refuse runs whose run config asks for more than ``policy`` grants (see the module)."""
    if agent_type == "docker":
        from prefect.agent.docker import DockerAgent
        from prefect.run_configs import DockerRun

        def docker(original):
            def deploy_flow(self, flow_run, *args, **kwargs):
                run_config = self._get_run_config(flow_run, DockerRun)
                host_config = getattr(run_config, "host_config", None) or {}
                refusal = check_host_config(host_config, policy)
                if refusal is not None:
                    raise PolicyRefusal(refusal.message())
                return original(self, flow_run, *args, **kwargs)

            return deploy_flow

        _wrap(DockerAgent, "deploy_flow", docker)
    elif agent_type == "kubernetes":
        from prefect.agent.kubernetes import KubernetesAgent

        def kubernetes(original):
            def generate_job_spec(self, flow_run, *args, **kwargs):
                job = original(self, flow_run, *args, **kwargs)
                refusal = check_job(job, policy)
                if refusal is not None:
                    raise PolicyRefusal(refusal.message())
                return job

            return generate_job_spec

        _wrap(KubernetesAgent, "generate_job_spec", kubernetes)
