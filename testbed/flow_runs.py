"""Looking at flow runs in the API double: state histories, final states."""

from __future__ import annotations

import contextlib
import time
from typing import Dict, Iterable, List

import docker

from prefect_api_double import PrefectApiDouble

AGENT_READY = r"Waiting for flow runs\.\.\."  # the agent's log line once it polls
FLOW_RUN_LABEL = "io.prefect.flow-run-id"  # the Docker agent's label on flow-run containers
FINAL_STATES = ("Success", "Failed", "Cancelled")


def flow_run_ids_in(values: Iterable[object]) -> List[str]:
    """The flow runs of the API doubles among ``values`` (a test's fixture values: a double,
    or a factory keeping the ``doubles`` it made)."""
    doubles: List[PrefectApiDouble] = []
    for value in values:
        if isinstance(value, PrefectApiDouble):
            doubles.append(value)
        doubles.extend(getattr(value, "doubles", []))
    return [run["id"] for double in doubles for run in double.flow_runs()]


def flow_run_containers(client: docker.DockerClient, run_id: str, stopped: bool = True) -> list:
    """The engine's containers for ``run_id`` (the Docker agent's label), stopped ones too
    unless ``stopped`` is False; one removed while they are listed is left out."""
    return client.containers.list(
        all=stopped, ignore_removed=True, filters={"label": f"{FLOW_RUN_LABEL}={run_id}"}
    )


def remove_flow_run_containers(client: docker.DockerClient, run_ids: Iterable[str]) -> int:
    """Remove the flow-run containers of ``run_ids``: the stock agent leaves every one, and
    ours those of runs that outlived it. Returns how many were removed."""
    wanted = set(run_ids)
    if not wanted:
        return 0
    removed = 0
    for container in client.containers.list(
        all=True, ignore_removed=True, filters={"label": FLOW_RUN_LABEL}
    ):
        if container.labels.get(FLOW_RUN_LABEL) not in wanted:
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: the agent is removing it already
                raise
    return removed


def state_names(api: PrefectApiDouble, flow_run_id: str) -> List[str]:
    """The flow run's state history, oldest first."""
    return [state["state"] for state in api.flow_run_states(flow_run_id)]


def assert_ran_exactly_once(api: PrefectApiDouble, flow_run_id: str, final: str = "Success"):
    """One Submitted state, one Running, and the run ended in ``final``."""
    history = state_names(api, flow_run_id)
    assert history.count("Submitted") == 1, history
    assert history.count("Running") <= 1, history
    assert history[-1] == final, history


def wait_final(api: PrefectApiDouble, run_ids: Iterable[str], timeout: float) -> Dict[str, str]:
    """Wait until every run is in a final state; return run id -> state."""
    run_ids = list(run_ids)
    deadline = time.monotonic() + timeout
    while True:
        states = {run_id: api.flow_run(run_id)["state"] for run_id in run_ids}
        if all(state in FINAL_STATES for state in states.values()):
            return states
        if time.monotonic() > deadline:
            pending = {k: v for k, v in states.items() if v not in FINAL_STATES}
            raise AssertionError(f"{len(pending)} runs not final after {timeout} s: {pending}")
        time.sleep(0.5)


def logs_saying(api: PrefectApiDouble, run_id: str, text: str, timeout: float = 30) -> str:
    """The run's logs, joined, once they say ``text``: a flow runner sends its last batch as
    it exits and the agent writes a failure's output just after the state, so logs arrive
    after the final state."""

    def logs() -> str:
        return "\n".join(log["message"] for log in api.logs(flow_run_id=run_id))

    api.wait_until(lambda: text in logs(), timeout, what=f"{text!r} in the run's logs")
    return logs()


def sleeping_container(docker_client, run_id: str):
    """The container of a run of testbed/flows/sleeps.py, once its task is sleeping."""

    def started():
        found = flow_run_containers(docker_client, run_id, stopped=False)
        return [c for c in found if "e2e: sleeping" in c.logs().decode(errors="replace")]

    (container,) = PrefectApiDouble.wait_until(started, 120, what="the flow run's task started")
    return container


OWNER_LABEL = "io.prefect-agent.owner"  # the launcher's label: the agent id that created it


class AliveContainers:
    """The most flow-run containers of one agent running at once, from the engine's
    start/die events (filtered by the agent's own label: other tests' containers, on the
    same engine, are not counted). ``close()`` ends the watch."""

    def __init__(self, docker_client, agent_id: str) -> None:
        import threading

        self.now: Dict[str, bool] = {}
        self.most = 0
        self.starts: List[str] = []
        self._stream = docker_client.events(
            decode=True,
            filters={
                "type": "container",
                "event": ["start", "die"],
                "label": [FLOW_RUN_LABEL, f"{OWNER_LABEL}={agent_id}"],
            },
        )

        def read() -> None:
            with contextlib.suppress(Exception):
                for event in self._stream:
                    if event["status"] == "start":
                        self.now[event["id"]] = True
                        self.starts.append(event["Actor"]["Attributes"][FLOW_RUN_LABEL])
                    else:
                        self.now.pop(event["id"], None)
                    self.most = max(self.most, len(self.now))

        threading.Thread(target=read, daemon=True).start()

    def close(self) -> None:
        self._stream.close()
