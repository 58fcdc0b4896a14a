"""Where the launcher reaches into prefect's agent (prefect 1.2.4's ``prefect.agent.Agent``).

Each hook wraps one method of the base class that every agent type inherits and calls the
original: the poll (``_get_ready_flow_runs``), the runs it found
(``_get_flow_run_metadata``), a deployment (``_deploy_flow_run`` with its
``_mark_flow_as_submitted`` / ``_mark_flow_as_failed``), registration
(``_setup_api_connection``) and the health server (``_start_agent_api_server``, replaced by
:mod:`bootstrap.launcher.http`). The poll ceiling is prefect's own back-off table, capped.

The flow-run policy (:mod:`bootstrap.launcher.policy`) hooks where each agent type turns a
run into something real: ``DockerAgent.deploy_flow`` and ``KubernetesAgent.generate_job_spec``.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, Dict

from bootstrap.launcher import http
from bootstrap.launcher.config import LauncherConfig, poll_intervals
from bootstrap.launcher.health import AgentHealth
from bootstrap.launcher.metrics import Metrics
from bootstrap.launcher.policy import Policy, PolicyRefusal, check_host_config, check_job


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
    found: Dict[str, float] = {}  # flow run id -> when a poll found it
    deployment = threading.local()  # per deploying thread: what happened to its run

    def setup(original):
        def _setup_api_connection(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            health.registered()
            return result

        return _setup_api_connection

    def poll(original):
        def _get_ready_flow_runs(self, *args, **kwargs):
            health.poll_started()
            try:
                flow_run_ids = original(self, *args, **kwargs)
            except Exception as exc:
                health.poll_failed(describe_error(exc))
                metrics.polls.labels("failure").inc()
                raise
            health.poll_succeeded()
            metrics.polls.labels("success").inc()
            metrics.last_success.set_to_current_time()
            return flow_run_ids

        return _get_ready_flow_runs

    def metadata(original):
        def _get_flow_run_metadata(self, *args, **kwargs):
            flow_runs = original(self, *args, **kwargs)
            now = time.monotonic()
            for flow_run in flow_runs:
                found.setdefault(flow_run.id, now)
            return flow_runs

        return _get_flow_run_metadata

    def deploy(original):
        def _deploy_flow_run(self, flow_run, *args, **kwargs):
            deployment.submitted = deployment.failed = False
            try:
                return original(self, flow_run, *args, **kwargs)
            finally:
                since = found.pop(flow_run.id, None)
                if deployment.failed:
                    metrics.deploy_failures.inc()
                elif deployment.submitted:
                    metrics.submitted.inc()
                    if since is not None:
                        metrics.submission_seconds.observe(time.monotonic() - since)

        return _deploy_flow_run

    def submitted(original):
        def _mark_flow_as_submitted(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            deployment.submitted = True
            return result

        return _mark_flow_as_submitted

    def failed(original):
        def _mark_flow_as_failed(self, *args, **kwargs):
            deployment.failed = True
            return original(self, *args, **kwargs)

        return _mark_flow_as_failed

    _wrap(agent_class, "_setup_api_connection", setup)
    _wrap(agent_class, "_get_ready_flow_runs", poll)
    _wrap(agent_class, "_get_flow_run_metadata", metadata)
    _wrap(agent_class, "_deploy_flow_run", deploy)
    _wrap(agent_class, "_mark_flow_as_submitted", submitted)
    _wrap(agent_class, "_mark_flow_as_failed", failed)

    def api_server(self) -> None:
        http.start(self, config, health)

    agent_class._start_agent_api_server = api_server


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
