"""The Docker agent owns the containers it starts (decisions: :mod:`.supervision`).

- **Creation**: one container per flow run (its name is the run id, so the engine itself
  refuses a second one, from this agent or another on the same engine), labelled with the
  agent's id, and not auto-removed, so that its exit can be read.
- **Exit**: the engine's ``die`` events for those containers; a run not finished in the API
  is set Failed with the reason, and the container's last output goes to the run's logs.
  A success is removed; a failure is kept ``retention`` seconds for ``docker logs``.
- **Start**: before the first poll, exits missed while the agent was down are handled the
  same way (a run whose container is gone altogether is left to the server's Lazarus).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

from bootstrap.agent import supervision
from bootstrap.agent.capacity import Capacity
from bootstrap.agent.docker_socket import (
    NO_SOCKET,
    SocketAccess,
    binds_a_docker_socket,
    give_socket_group,
)
from bootstrap.agent.hooks import agent_id
from bootstrap.agent.supervision import OWNER_LABEL, RUN_LABEL, ContainerExit, Verdict

logger = logging.getLogger("bootstrap.agent")
RUN_STATE = "query($id: uuid!) { flow_run_by_pk(id: $id) { state } }"


CREATED_HERE = threading.local()  # per deploying thread: the run id whose container it made
LIVE = ("running", "restarting", "paused")  # "created" and never started: a failed deploy


class RunAlreadyStarted(RuntimeError):
    """Another container of this flow run exists. The message starts as prefect's agent
    expects of a lost race ("State update failed"), so the agent skips the run quietly."""


RUNTIME_USER_ENV = "PREFECT_AGENT_USER"  # in this image's Env: its runtime user


def runtime_user(image_config: Dict[str, Any]) -> Optional[str]:
    """The user a flow run of ``image_config`` (``docker inspect``'s Config) starts as: an
    image of this kind starts as root only to give its user a Docker socket, so flow runs
    start as that user (and need no capability to drop root: a run config with
    ``cap_drop: [ALL]`` works); a socket they are given comes with its group
    (:mod:`.docker_socket`). Other images: as they say (None)."""
    for item in image_config.get("Env") or []:
        name, _, value = item.partition("=")
        if name == RUNTIME_USER_ENV and value:
            return value
    return None


def own_docker_client(
    agent: Any,
    client: Any,
    defaults: Optional[Dict[str, Any]] = None,
    socket: SocketAccess = NO_SOCKET,
) -> Any:
    """Make ``client`` (the agent's docker.APIClient) create containers the agent owns, with
    the resource ``defaults`` under each run's own host_config, as the image's runtime user
    (:func:`runtime_user`). A run given the Docker socket (a volume of the agent's or the
    run's own) gets the socket's group, as the agent has it: not being root, it could not
    use the socket otherwise; for a socket only root may use, it starts as the image says
    (the root step keeps root for such a socket, as it did for the agent)."""
    import docker

    create_host_config = client.create_host_config
    create_container = client.create_container

    def host_config(**options: Any) -> Any:
        options["auto_remove"] = False  # the agent reads the exit, then removes it itself
        for name, value in (defaults or {}).items():
            if name == "nano_cpus" and ("cpu_quota" in options or "cpu_period" in options):
                continue  # Docker refuses both ways of limiting CPUs at once
            options.setdefault(name, value)
        give_socket_group(options, socket)
        return create_host_config(**options)

    def container(image: str, *args: Any, labels: Optional[Dict[str, str]] = None, **kw: Any):
        labels = dict(labels or {})
        run_id = labels.get(RUN_LABEL)
        if not run_id:
            return create_container(image, *args, labels=labels, **kw)
        labels[OWNER_LABEL] = agent_id(agent)
        kw["name"] = supervision.container_name(run_id)
        binds = (kw.get("host_config") or {}).get("Binds")
        if "user" not in kw and not (socket.root_only and binds_a_docker_socket(binds)):
            try:
                user = runtime_user(client.inspect_image(image).get("Config") or {})
            except docker.errors.APIError:  # no such image: create_container says so
                user = None
            if user:
                kw["user"] = user
        for _ in range(2):
            try:
                created = create_container(image, *args, labels=labels, **kw)
                CREATED_HERE.run_id = run_id
                return created
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                if not _set_aside_finished(agent, client, kw["name"], run_id):
                    raise RunAlreadyStarted(
                        f"State update failed: flow run {run_id} already has a container "
                        f"({kw['name']}); not starting it twice"
                    ) from None
        raise RunAlreadyStarted(f"State update failed: cannot name a container {kw['name']}")

    client.create_host_config = host_config
    client.create_container = container
    return client


def has_live_container(client: Any, flow_run_id: str) -> bool:
    """Whether the run's container exists and runs (another agent took it). An engine that
    does not answer says no: the deploy then fails with the engine's own error, as prefect's
    would, and the engine's one name per run still stops a second container."""
    try:
        details = client.inspect_container(supervision.container_name(flow_run_id))
    except Exception:  # NotFound, or the engine away
        return False
    return details["State"]["Status"] in LIVE


def already_taken(agent: Any, flow_run_id: str) -> Optional[str]:
    """Why the run must not be deployed now (see supervision.taken), from a fresh look; an
    API error says nothing (prefect's own Submitted update then meets it and reports it)."""
    try:
        result = agent.client.graphql(RUN_STATE, variables={"id": flow_run_id})
    except Exception:
        return None
    run = result["data"]["flow_run_by_pk"]
    state = None if run is None else run["state"]
    return supervision.taken(state, has_live_container(agent.docker_client, flow_run_id))


LAST_SCHEDULED = (
    "query($id: uuid!, $states: [String!]) { flow_run_state(where: {flow_run_id: {_eq: $id},"
    " state: {_in: $states}}, order_by: {timestamp: desc}, limit: 1) { timestamp } }"
)
SCHEDULED_STATES = ["Scheduled", "Retrying", "Resume", "Queued", "Paused"]


def _set_aside_finished(agent: Any, client: Any, name: str, run_id: str) -> bool:
    """Make room for this attempt of the run: a container that finished *before* the run was
    last scheduled (an earlier attempt) keeps its logs under another name. Anything else --
    live, gone meanwhile, or finished within this attempt (another agent ran it) -- means
    the run is taken: False."""
    try:
        details = client.inspect_container(name)
    except Exception:  # removed (or renamed) under us: another agent is at it
        return False
    if details["State"]["Status"] not in ("exited", "dead"):
        return False
    finished = supervision.parse_docker_time(details["State"].get("FinishedAt"))
    rows = agent.client.graphql(
        LAST_SCHEDULED, variables={"id": run_id, "states": SCHEDULED_STATES}
    )["data"]["flow_run_state"]
    scheduled = supervision.parse_docker_time(rows[0]["timestamp"]) if rows else None
    if finished is None or scheduled is None or finished >= scheduled:
        return False
    stamp = finished.strftime("%Y-%m-%dT%H%M%S")
    client.rename(details["Id"], f"{name}-{stamp}")
    return True


class DockerRuns:
    """Follows the engine for the agent's containers and ends their runs truthfully."""

    def __init__(
        self,
        agent: Any,
        engine: Any,
        retention: float,
        on_ended: Optional[Callable[[str, Optional[int]], None]] = None,
        sweep_interval: float = 60.0,
        capacity: Optional[Capacity] = None,
    ) -> None:
        self.agent = agent
        self.engine = engine  # a docker.APIClient of its own (events block)
        self.retention = retention
        self.on_ended = on_ended or (lambda reason, exit_code: None)  # for the metrics
        self.sweep_interval = sweep_interval
        self.stopped = threading.Event()
        self.capacity = capacity or Capacity()
        self.handled: Set[str] = set()  # container ids judged already
        self._events: Any = None
        self._since = time.time()

    @property
    def owner(self) -> str:
        return agent_id(self.agent)

    def _filters(self, **extra: Any) -> Dict[str, Any]:
        return {"label": [f"{OWNER_LABEL}={self.owner}"], **extra}

    # ------------------------------------------------------------------ on start

    def reconcile(self) -> None:
        """Handle exits missed while the agent was down, and count the running containers
        against the limit. Call before the first poll.

        Runs whose container is gone altogether are left to the server's Lazarus: the API
        cannot tell which engine a run was on, and identical agents on other hosts share
        this agent's id."""
        self._catch_up()
        for details in self.engine.containers(filters=self._filters()):  # running ones
            self.capacity.hold(details["Labels"].get(RUN_LABEL, ""))

    # ------------------------------------------------------------------ exits

    def handle(self, container_id: str) -> Optional[Verdict]:
        if container_id in self.handled:
            return None
        details = self.engine.inspect_container(container_id)
        labels = details["Config"].get("Labels") or {}
        if labels.get(OWNER_LABEL) != self.owner or RUN_LABEL not in labels:
            return None
        if details["State"]["Status"] not in ("exited", "dead"):
            return None
        self.handled.add(container_id)
        if details["Name"].lstrip("/") != supervision.container_name(labels[RUN_LABEL]):
            return None  # an earlier attempt's, set aside: not the run's current state
        self.capacity.release(labels[RUN_LABEL])
        output = self.engine.logs(container_id, tail=supervision.TAIL_LINES, timestamps=False)
        exit = ContainerExit(
            flow_run_id=labels[RUN_LABEL],
            container_id=details["Id"],
            name=details["Name"].lstrip("/"),
            exit_code=int(details["State"].get("ExitCode") or 0),
            oom_killed=bool(details["State"].get("OOMKilled")),
            error=details["State"].get("Error") or "",
            finished_at=supervision.parse_docker_time(details["State"].get("FinishedAt")),
            output=output.decode(errors="replace").splitlines(),
        )
        verdict = supervision.judge(exit, self._state(exit.flow_run_id))
        if verdict.fail_message is not None:
            self._fail(exit.flow_run_id, verdict.fail_message, list(exit.output))
            self.on_ended("oom-killed" if exit.oom_killed else "container-exited", exit.exit_code)
        if verdict.remove:
            self.engine.remove_container(exit.container_id, force=True)
        return verdict

    def _state(self, run_id: str) -> Optional[str]:
        result = self.agent.client.graphql(RUN_STATE, variables={"id": run_id})
        run = result["data"]["flow_run_by_pk"]
        return None if run is None else run["state"]

    def _fail(self, run_id: str, message: str, output: List[str]) -> None:
        from prefect.engine.state import Failed

        logger.error("Flow run %s: %s", run_id, message)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        logs = [{"flow_run_id": run_id, "name": "prefect-agent", "level": "ERROR",
                 "message": message, "timestamp": now}]  # fmt: skip
        if output:
            text = "The flow-run container's last lines of output:\n" + "\n".join(output)
            logs.append({**logs[0], "message": text})
        self.agent.client.set_flow_run_state(flow_run_id=run_id, state=Failed(message))
        self.agent.client.write_run_logs(logs)

    # ------------------------------------------------------------------ the threads

    def start(self) -> None:
        threading.Thread(target=self._follow, name="docker-runs", daemon=True).start()
        threading.Thread(target=self._sweep_loop, name="docker-runs-sweep", daemon=True).start()

    def _follow(self) -> None:
        while not self.stopped.is_set():
            try:
                self._events = self.engine.events(
                    since=int(self._since) - 1,  # what died while catching up comes too
                    filters=self._filters(type="container", event="die"),
                    decode=True,
                )
                for event in self._events:
                    attributes = event.get("Actor", {}).get("Attributes", {})
                    if attributes.get("name") == supervision.container_name(
                        attributes.get(RUN_LABEL, "")
                    ):
                        self.capacity.release(attributes[RUN_LABEL])  # even if inspect fails
                    self._safely(self.handle, event["id"])
            except Exception as exc:  # the engine went away: catch up once it is back
                if self.stopped.is_set():
                    return
                logger.warning("Lost the engine's events (%s); reconnecting", exc)
            if self.stopped.wait(2):
                return
            self._safely(self._catch_up)  # the engine may still be away: try again then

    def _catch_up(self) -> None:
        """Exits that happened while the events were lost."""
        self._since = time.time()
        for details in self.engine.containers(all=True, filters=self._filters(status="exited")):
            self._safely(self.handle, details["Id"])

    def _sweep_loop(self) -> None:
        while not self.stopped.wait(self.sweep_interval):
            self._safely(self.sweep)

    def sweep(self) -> List[str]:
        """Remove the kept (failed) containers whose retention has run out."""
        removed = []
        now = datetime.datetime.now(datetime.timezone.utc)
        for summary in self.engine.containers(all=True, filters=self._filters(status="exited")):
            details = self.engine.inspect_container(summary["Id"])
            finished = supervision.parse_docker_time(details["State"].get("FinishedAt"))
            if supervision.expired(finished, now, self.retention):
                self.engine.remove_container(summary["Id"], force=True)
                removed.append(summary["Id"])
        return removed

    def stop(self) -> None:
        self.stopped.set()
        if self._events is not None:
            self._events.close()

    def _safely(self, action: Callable, *args: Any) -> Any:
        try:
            return action(*args)
        except Exception as exc:  # one run's trouble must not stop the others' supervision
            logger.warning("Supervising flow-run containers: %s: %s", type(exc).__name__, exc)
            return None
