"""The Docker agent's methods, hooked so that it owns what it starts: containers it creates
and follows (:mod:`.docker_runs`), runs it never deploys twice, and a limit of runs alive at
once (:mod:`.capacity`) and the images they need (:mod:`.image_pull`). Each method takes
prefect's and returns its replacement."""

from __future__ import annotations

import logging
from typing import Any, Optional, Set

from bootstrap.agent.capacity import Capacity, admissible
from bootstrap.agent.config import LauncherConfig
from bootstrap.agent.docker_runs import (
    CREATED_HERE,
    DockerRuns,
    already_taken,
    has_live_container,
    own_docker_client,
)
from bootstrap.agent.docker_socket import socket_access
from bootstrap.agent.image_pull import ImagePuller
from bootstrap.agent.metrics import Metrics

logger = logging.getLogger("bootstrap.agent")


class DockerHooks:
    def __init__(self, config: LauncherConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.capacity = Capacity(config.max_flow_runs)
        self.children: Set[str] = set()  # of the last poll: queued runs whose parent runs here
        self.puller = ImagePuller(
            config.pull_policy, config.pull_attempts, config.docker_config_file, metrics.pulled
        )

    def install(self) -> None:
        from prefect.agent.docker import DockerAgent

        from bootstrap.agent.hooks import wrap

        wrap(DockerAgent, "_get_docker_client", self.client)
        wrap(DockerAgent, "_setup_api_connection", self.setup)
        wrap(DockerAgent, "_deploy_flow_run", self.once)
        wrap(DockerAgent, "_get_flow_run_metadata", self.limited)
        wrap(DockerAgent, "deploy_flow", self.pulled)

    def ended(self, reason: str, exit_code: Optional[int]) -> None:
        self.metrics.runs_ended.labels(reason).inc()
        if exit_code is not None:
            self.metrics.container_exits.labels(str(exit_code)).inc()

    def client(self, original):
        def _get_docker_client(agent, *args, **kwargs):
            client = original(agent, *args, **kwargs)
            socket = socket_access(self.config.engine_url)
            return own_docker_client(agent, client, self.config.docker_defaults, socket)

        return _get_docker_client

    def setup(self, original):
        def _setup_api_connection(agent, *args, **kwargs):
            import docker

            result = original(agent, *args, **kwargs)
            engine = docker.APIClient(base_url=agent.base_url, version="auto", timeout=60)
            runs = DockerRuns(
                agent,
                engine,
                self.config.failed_container_retention,
                self.ended,
                capacity=self.capacity,
            )
            runs._safely(runs.reconcile)  # before the first poll: nothing of this life is out
            runs.start()
            agent._docker_runs = runs
            return result

        return _setup_api_connection

    def once(self, original):
        def _deploy_flow_run(agent, flow_run, *args, **kwargs):
            # Before prefect marks it Submitted again: another agent may have taken the run
            # since the poll (the engine's one-name-per-run check at creation is the last
            # guard; this one also keeps the lost race out of the run's state history).
            reason = already_taken(agent, flow_run.id)
            if reason is not None:
                logger.info("Flow run %s not deployed: %s", flow_run.id, reason)
                return None
            if not self.capacity.admit(flow_run.id, child=flow_run.id in self.children):
                logger.info("Flow run %s waits for a slot", flow_run.id)
                return None
            CREATED_HERE.run_id = None
            try:
                return original(agent, flow_run, *args, **kwargs)
            finally:
                self._settle(agent, flow_run.id)

        return _deploy_flow_run

    def pulled(self, original):
        def deploy_flow(agent, flow_run, *args, **kwargs):
            from prefect.utilities.agent import get_flow_image

            agent.no_pull = True  # prefect's own rule: every run, failures read as success
            self.puller.ensure(agent.docker_client, get_flow_image(flow_run=flow_run))
            return original(agent, flow_run, *args, **kwargs)

        return deploy_flow

    def _settle(self, agent: Any, run_id: str) -> None:
        """Keep the slot only for a container this deploy created and that runs (a lost
        race, a failed start or a run already finished give it back)."""
        try:
            keep = CREATED_HERE.run_id == run_id and has_live_container(agent.docker_client, run_id)
        except Exception:  # the engine hiccuped: its die event, if any, releases it anyway
            keep = False
        self.capacity.deployed(run_id, created=keep)

    def limited(self, original):
        def _get_flow_run_metadata(agent, flow_run_ids, *args, **kwargs):
            flow_runs = original(agent, flow_run_ids, *args, **kwargs)
            # a run whose container runs (another agent's) is no work: an empty poll lets the
            # agent back off instead of polling four times a second
            flow_runs = [r for r in flow_runs if not has_live_container(agent.docker_client, r.id)]
            if self.capacity.limit <= 0 or not flow_runs:
                return flow_runs
            # none admitted: the agent sees an empty poll and backs off
            chosen, self.children = admissible(agent.client, flow_runs, self.capacity)
            self.metrics.capacity(self.capacity, waiting=len(flow_runs) - len(chosen))
            return chosen

        return _get_flow_run_metadata
