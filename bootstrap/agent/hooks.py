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
from typing import Any, Callable, Dict

from bootstrap.agent import health_server
from bootstrap.agent.config import LauncherConfig, poll_intervals
from bootstrap.agent.liveness import AgentHealth
from bootstrap.agent.metrics import Metrics
from bootstrap.agent.policy import Policy, PolicyRefusal, check_host_config, check_job

logger = logging.getLogger("bootstrap.agent")
AGENT_ID_HEADER = "X-PREFECT-AGENT-ID"


def describe_error(exc: BaseException) -> str:
    """One short line for an error, without the URLs and bodies prefect puts in messages."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def agent_id(agent: Any) -> str:
    """The id the server gave the agent at registration ("" before it)."""
    return agent.client._attached_headers.get(AGENT_ID_HEADER, "")


def wrap(cls: Any, name: str, wrapper: Callable[[Callable], Callable]) -> None:
    original = getattr(cls, name)
    setattr(cls, name, functools.wraps(original)(wrapper(original)))


def install(agent_class: Any, config: LauncherConfig, health: AgentHealth, metrics: Metrics):
    """Hook ``agent_class`` (prefect.agent.Agent) for this process."""
    agent_class._loop_intervals = poll_intervals(
        agent_class._loop_intervals, config.max_poll_interval
    )
    hooks = AgentHooks(health, metrics)
    wrap(agent_class, "_setup_api_connection", hooks.setup)
    wrap(agent_class, "_get_ready_flow_runs", hooks.poll)
    wrap(agent_class, "_get_flow_run_metadata", hooks.metadata)
    wrap(agent_class, "_deploy_flow_run", hooks.deploy)
    wrap(agent_class, "_mark_flow_as_submitted", hooks.submitted)
    wrap(agent_class, "_mark_flow_as_failed", hooks.failed)

    def api_server(self) -> None:
        health_server.start(self, config, health)

    agent_class._start_agent_api_server = api_server
    if config.agent_type == "docker":
        from bootstrap.agent.docker_hooks import DockerHooks

        DockerHooks(config, metrics).install()
    elif config.agent_type == "kubernetes":
        from bootstrap.agent.kubernetes_runs import install as install_kubernetes

        install_kubernetes(metrics, config)


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

        wrap(DockerAgent, "deploy_flow", docker)
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

        wrap(KubernetesAgent, "generate_job_spec", kubernetes)
