"""A flood survived: with the agent down, 100 runs are scheduled; when it starts under
BOOTSTRAP_AGENT_MAX_FLOW_RUNS it never has more flow-run containers alive than the limit,
every run succeeds once, its polling of the API stays bounded and /api/health stays
healthy throughout (Prefect Server #213: agents flooding the host after downtime)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from prefect_api_double import PrefectApiDouble
from testbed.agent_stand import DockerAgentStand
from testbed.flow_runs import AliveContainers, assert_ran_exactly_once, wait_final
from tests.helpers.figures import figure

# Dozens of containers at once: one such test at a time ("load" group, tests/conftest.py),
# beside lighter ones.
pytestmark = [pytest.mark.reliability, pytest.mark.docker, pytest.mark.xdist_group("load")]

RUNS = 100
LIMIT = 4


def health(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


class HealthProbe:
    """GET /api/health every half second from the host, as a Docker health check would,
    from its first healthy answer on (the agent starting again answers nothing before)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/health"
        PrefectApiDouble.wait_until(lambda: health(self.url) == 200, 120, 0.2, "the agent up")
        self.answers: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        while not self._stop.wait(0.5):
            self.answers[health(self.url)] += 1

    def stop(self) -> Counter:
        self._stop.set()
        self._thread.join()
        return self.answers


def test_a_hundred_runs_waiting_for_a_restarted_agent(
    prefect_api, containers, prod_image, docker_client
) -> None:
    stand = DockerAgentStand(prefect_api, containers, prod_image)
    stand.start_agent(BOOTSTRAP_AGENT_MAX_FLOW_RUNS=str(LIMIT))
    flow_id = stand.register("noop.py")
    stand.agent.stop()  # the outage: runs pile up while no agent polls
    runs = [stand.run(flow_id) for _ in range(RUNS)]
    (agent,) = prefect_api.agents()
    alive = AliveContainers(docker_client, agent["id"])
    prefect_api.clear_requests()
    started = time.monotonic()
    stand.agent.start()
    probe = HealthProbe(stand.port)
    try:
        states = wait_final(prefect_api, runs, timeout=540)
    finally:
        answers = probe.stop()
        alive.close()
    drained = time.monotonic() - started
    polls = len(prefect_api.requests_for("get_runs_in_queue"))
    figure(f"{RUNS} runs after an outage, limit {LIMIT}: drained", drained)
    figure("runs per minute", RUNS / drained * 60, "runs/min")
    figure("polls per run", polls / RUNS, "polls")
    assert set(states.values()) == {"Success"}, Counter(states.values())
    for run in runs:
        assert_ran_exactly_once(prefect_api, run)
    assert sorted(alive.starts) == sorted(runs)  # every run, each once
    assert alive.most == LIMIT, alive.most  # the limit, used and never passed
    # bounded polling: a limit that reported its full queue at every poll would keep
    # prefect's back-off at its 0.25 s floor (4 polls a second for the whole drain)
    assert polls < 2 * drained, (polls, drained)
    assert set(answers) == {200}, answers  # healthy at every probe, from the first
    assert sum(answers.values()) > drained  # and probed throughout
