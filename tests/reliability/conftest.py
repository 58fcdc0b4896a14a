"""Reliability and security tests: faults, signals, bad input, load, secrets.

Everything runs for real: the Docker engine, the images built from the Dockerfile, the
agent and flow-run containers. The one stand-in is the Prefect Server API
(tests/prefect_api_double). The fixtures are those of tests/fixtures and of the end-to-end
scenario (``docker_agent_stand``), re-exported here; this module only adds helpers to
look at what happened: flow-run state histories, flow-run containers created (from the
engine's events: ``container_creations``), processes of a container.

Figures (timings) are printed as ``FIGURE <name>: <value>`` lines: ``pytest -s -m
reliability | grep FIGURE`` collects them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Dict, Iterable, Iterator, List

import docker
import pytest

from tests.e2e.conftest import DockerAgentStand, docker_agent_stand  # noqa: F401 - re-exported
from tests.prefect_api_double import PrefectApiDouble

AGENT_READY = r"Waiting for flow runs\.\.\."
FLOW_RUN_LABEL = "io.prefect.flow-run-id"
FINAL_STATES = ("Success", "Failed", "Cancelled")


def figure(name: str, value: float, unit: str = "s") -> None:
    """Print a measured figure (``pytest -s`` shows it; the README table quotes them)."""
    print(f"\nFIGURE {name}: {value:.2f} {unit}")


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output, output[-4000:]


def state_names(api: PrefectApiDouble, flow_run_id: str) -> List[str]:
    """The flow run's state history, oldest first."""
    return [state["state"] for state in api.flow_run_states(flow_run_id)]


def assert_ran_exactly_once(api: PrefectApiDouble, flow_run_id: str, final: str = "Success"):
    """One Submitted state, one Running, and the run ended in ``final``."""
    history = state_names(api, flow_run_id)
    assert history.count("Submitted") == 1, history
    assert history.count("Running") <= 1, history
    assert history[-1] == final, history


class ContainerCreations:
    """Counts the containers the engine creates for each flow run, from its live event
    stream (``docker events`` afterwards would not do: the engine keeps its last 256)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.counts: Dict[str, int] = collections.Counter()
        self._stream = client.events(  # the request is made here: no event is missed
            decode=True,
            filters={"type": "container", "event": "create", "label": FLOW_RUN_LABEL},
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream is closed under it at the end
            for event in self._stream:
                self.counts[event["Actor"]["Attributes"][FLOW_RUN_LABEL]] += 1

    def of(self, run_ids: Iterable[str]) -> Dict[str, int]:
        """Run id -> containers created for it (0 included)."""
        time.sleep(0.5)  # events still in flight
        return {run_id: self.counts.get(run_id, 0) for run_id in run_ids}

    def close(self) -> None:
        self._stream.close()


@pytest.fixture
def container_creations(docker_client: docker.DockerClient) -> Iterator[ContainerCreations]:
    """Flow-run containers the engine creates from now on, per flow run."""
    creations = ContainerCreations(docker_client)
    yield creations
    creations.close()


def processes(container) -> List[Dict[str, str]]:
    """``docker top`` as dicts: pid, ppid, uid, cmd (the full command line), and "init":
    whether it is the container's first process (PIDs are the host's)."""
    top = container.top(ps_args="-o pid,ppid,uid,args")
    rows = [dict(zip(("pid", "ppid", "uid", "cmd"), row)) for row in top["Processes"] or []]
    pids = {row["pid"] for row in rows}
    for row in rows:
        row["init"] = row["ppid"] not in pids
    return rows


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
