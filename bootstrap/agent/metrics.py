"""Prometheus metrics of the agent (``BOOTSTRAP_METRICS_PORT``), in a registry of its own."""

from __future__ import annotations

from typing import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds from a flow run found in a poll to its deployment (container or Job created).
SUBMISSION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PULL_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, agent_type: str, startup_seconds: Mapping[str, float]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.polls = Counter(
            "prefect_agent_polls", "Polls for flow runs, by outcome.", ["outcome"],
            registry=registry,
        )  # fmt: skip
        for outcome in ("success", "failure"):
            self.polls.labels(outcome)  # present from the start, at 0
        self.submitted = Counter(
            "prefect_agent_flow_runs_submitted",
            "Flow runs deployed (a container or a Job created).",
            registry=registry,
        )
        self.deploy_failures = Counter(
            "prefect_agent_flow_run_deploy_failures",
            "Flow runs the agent failed to deploy (set to Failed).",
            registry=registry,
        )
        self._supervision_metrics(registry)
        self._pull_metrics(registry)
        self.last_success = Gauge(
            "prefect_agent_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll for flow runs.",
            registry=registry,
        )
        self.submission_seconds = Histogram(
            "prefect_agent_flow_run_submission_seconds",
            "Seconds from a flow run found in a poll to its deployment.",
            buckets=SUBMISSION_BUCKETS,
            registry=registry,
        )
        self.engine_up = Gauge(
            "prefect_agent_docker_engine_up",
            "1 if the Docker engine answered its last check (Docker agents).",
            registry=registry,
        )
        self.healthy = Gauge(
            "prefect_agent_healthy", "1 if the agent is alive (its health check).",
            registry=registry,
        )  # fmt: skip
        steps = Gauge(
            "prefect_agent_bootstrap_step_seconds",
            "Seconds each start-up step of the bootstrap took.",
            ["step"],
            registry=registry,
        )
        for step, seconds in startup_seconds.items():
            steps.labels(step).set(seconds)
        info = Gauge(
            "prefect_agent_info", "The agent's type and prefect version.",
            ["agent_type", "prefect_version"], registry=registry,
        )  # fmt: skip
        info.labels(agent_type, _prefect_version()).set(1)

    def _supervision_metrics(self, registry: CollectorRegistry) -> None:
        """What the agent did about the flow runs it launched (bootstrap.agent.docker_runs)."""
        self.runs_ended = Counter(
            "prefect_agent_flow_runs_ended",
            "Flow runs the agent ended Failed after their container died, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in ("container-exited", "oom-killed", "job-failed"):
            self.runs_ended.labels(reason)
        self.slots_in_use = Gauge(
            "prefect_agent_flow_run_slots_in_use",
            "Flow runs alive under BOOTSTRAP_AGENT_MAX_FLOW_RUNS (as of the last poll).",
            registry=registry,
        )
        self.waiting_for_slot = Gauge(
            "prefect_agent_flow_runs_waiting_for_slot",
            "Ready flow runs the last poll left Scheduled for want of a slot.",
            registry=registry,
        )
        self.container_exits = Counter(
            "prefect_agent_flow_run_container_exits",
            "Flow-run containers that exited before their run finished, by exit code.",
            ["code"],
            registry=registry,
        )

    def _pull_metrics(self, registry: CollectorRegistry) -> None:
        """The Docker agent's image pulls (bootstrap.agent.image_pull)."""
        self.image_pulls = Counter(
            "prefect_agent_image_pulls", "Flow-run image pulls, by outcome.", ["outcome"],
            registry=registry,
        )  # fmt: skip
        for outcome in ("pulled", "failed"):
            self.image_pulls.labels(outcome)
        self.image_pull_seconds = Histogram(
            "prefect_agent_image_pull_seconds",
            "Seconds each flow-run image pull took (retries included).",
            buckets=PULL_BUCKETS,
            registry=registry,
        )

    def capacity(self, capacity, waiting: int) -> None:
        """Slots in use (a bootstrap.agent.capacity.Capacity) and runs left waiting."""
        self.slots_in_use.set(len(capacity.snapshot()))
        self.waiting_for_slot.set(waiting)

    def pulled(self, outcome: str, seconds: float) -> None:
        self.image_pulls.labels(outcome).inc()
        self.image_pull_seconds.observe(seconds)

    def serve(self, port: int, host: str = "") -> None:
        """Serve /metrics (raises OSError if the port is taken)."""
        start_http_server(port, addr=host or "0.0.0.0", registry=self.registry)  # noqa: S104


def _prefect_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prefect")
    except PackageNotFoundError:
        return "unknown"
