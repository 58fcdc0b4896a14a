"""bootstrap.flowrun.heartbeat: the run's heartbeat comes from the image's code for the whole
life of a flow-run container. A thread beats while the container prepares. A small process
(``python -m bootstrap.flowrun.heartbeat``) beats while prefect's runner runs, in place of
prefect's own, and ends with the runner, however the runner ends.

Against the API double over real HTTP; the runner is prefect's own, in a subprocess. The
last test runs the server's zombie killer on a clock 120 times faster."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time

import psutil
import pytest
from prefect.engine import state as states

from bootstrap.flowrun.heartbeat import FIRST_BEAT_SECONDS, MODE_ENV, Heartbeat
from bootstrap.flowrun.report import FlowRunRole
from prefect_api_double import PrefectApiDouble

from .runs import (
    role_env,
    runner_env,
    sleeping_task_run,
    sleeps_run,
    start_runner,
    wait_task_running,
)

SET_STATES = (
    "mutation($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
    "{ states { id } } }"
)
HEARTBEAT_PROCESS = [sys.executable, "-m", "bootstrap.flowrun.heartbeat"]
OURS = "bootstrap.flowrun.heartbeat"
PREFECTS = "prefect heartbeat flow-run"
UNREACHABLE_API = {
    "PREFECT__CONTEXT__FLOW_RUN_ID": "run",
    "PREFECT__CLOUD__API": "http://127.0.0.1:9/graphql",  # nothing listens there
    "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "0.1",
}


@pytest.fixture
def run_id(prefect_api, prefect_api_tenant) -> str:
    return sleeps_run(prefect_api, prefect_api_tenant)


def beats(api) -> int:
    return len(api.requests_for("update_flow_run_heartbeat"))


def heartbeat_children(runner: subprocess.Popen) -> list:
    """The command lines of the runner's child processes that send heartbeats."""
    found = []
    for child in psutil.Process(runner.pid).children(recursive=True):
        with_args = " ".join(child.cmdline())
        if OURS in with_args or PREFECTS in with_args:
            found.append(child)
    return found


def test_the_heartbeat_goes_on_while_the_container_prepares(prefect_api, run_id) -> None:
    prefect_api.execute(
        SET_STATES,
        {"input": {"states": [{"flow_run_id": run_id, "state": states.Submitted().serialize()}]}},
    )
    submitted = prefect_api.flow_run(run_id)["heartbeat"]
    with Heartbeat(FlowRunRole(run_id, prefect_api.url), interval=0.2) as beat:
        prefect_api.wait_until(lambda: beat.beats >= 3, timeout=15, what="three heartbeats")
    assert prefect_api.flow_run(run_id)["heartbeat"] > submitted
    assert "update_flow_run_heartbeat" in prefect_api.fields_called()


def test_a_quick_preparation_sends_no_heartbeat(prefect_api, run_id) -> None:
    """A container without extras is ready at once: no request. A slow one beats first
    after a few seconds (Lazarus' clock has run since Submitted), then every period."""
    prefect_api.clear_requests()
    role = FlowRunRole(run_id, prefect_api.url, heartbeat_interval=30)
    with Heartbeat(role) as beat:
        pass
    assert (beat.first, beat.beats) == (FIRST_BEAT_SECONDS, 0)
    assert "update_flow_run_heartbeat" not in prefect_api.fields_called()
    with Heartbeat(role, first=0.5) as beat:
        time.sleep(0.3)
        assert beat.beats == 0
        prefect_api.wait_until(lambda: beat.beats >= 1, timeout=15, what="the first heartbeat")
        time.sleep(1)
        assert beat.beats == 1  # the next one a period (30 s) later


def test_the_heartbeat_process_beats_until_its_runner_lets_go(prefect_api, run_id) -> None:
    env = {**role_env(prefect_api, run_id), "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "0.2"}
    process = subprocess.Popen(HEARTBEAT_PROCESS, env=env, stdin=subprocess.PIPE)
    try:
        prefect_api.wait_until(lambda: beats(prefect_api) >= 3, timeout=20, what="3 heartbeats")
        assert process.poll() is None
        process.stdin.close()  # what the runner's exit does, whatever ends it
        ended = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - ended < 2  # at once, not at the next beat's timeout
    finally:
        process.kill()
    # the flow's settings asked once, as prefect's runner does before it beats
    assert len(prefect_api.requests_for("flow_run_by_pk")) == 1


def test_a_flow_with_heartbeats_turned_off_gets_none(prefect_api, run_id) -> None:
    """The flow's settings, as prefect's runner reads them before it starts its heartbeat."""
    flow_id = prefect_api.flow_run(run_id)["flow_id"]
    prefect_api.store.update("flow", flow_id, {"settings": {"heartbeat_enabled": False}})
    env = {**role_env(prefect_api, run_id), "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "0.2"}
    process = subprocess.Popen(HEARTBEAT_PROCESS, env=env, stdin=subprocess.PIPE)
    try:
        assert process.wait(timeout=20) == 0  # by itself, its pipe still open
    finally:
        process.kill()
    assert beats(prefect_api) == 0


def test_heartbeats_that_do_not_reach_the_api_are_said_without_flooding_the_log(
    tmp_path,
) -> None:
    """The first failure and every tenth in a row, with the reason: a run without a
    heartbeat is failed by the zombie killer after 10 minutes."""
    log = tmp_path / "stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            HEARTBEAT_PROCESS, env=UNREACHABLE_API, stdin=subprocess.PIPE, stderr=stderr
        )
    try:
        said_21 = lambda: "(21 in a row)" in log.read_text()  # noqa: E731
        PrefectApiDouble.wait_until(said_21, timeout=60, what="21 failed beats")
        process.stdin.close()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
    said = [line for line in log.read_text().splitlines() if "in a row" in line]
    counts = [int(re.search(r"\((\d+) in a row\)", line).group(1)) for line in said]
    assert counts == list(range(1, 10 * len(counts), 10)), said
    assert len(counts) >= 3
    assert "WARNING" in said[0]
    assert "Connection refused" in said[0]


# A runner that starts the heartbeat process, forks a task process (which inherits the
# pipe's end and outlives it), then exits.
FORKING_RUNNER = """
import os, subprocess, sys, time
beat = subprocess.Popen([*sys.argv[1:], str(os.getpid())], stdin=subprocess.PIPE)
task = os.fork()
if task == 0:
    time.sleep(60)
    os._exit(0)
print(beat.pid, task, flush=True)
os._exit(0)
"""


def test_it_ends_when_its_runner_is_gone_though_a_forked_process_holds_the_pipe() -> None:
    """The heartbeat process also watches its parent (every 5 s)."""
    env = {**UNREACHABLE_API, "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "30"}
    runner = subprocess.Popen(
        [sys.executable, "-c", FORKING_RUNNER, *HEARTBEAT_PROCESS],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    heartbeat, task = (psutil.Process(int(pid)) for pid in runner.stdout.readline().split())
    runner.wait(timeout=10)
    try:
        assert not gone(task)  # the pipe's end is still held
        PrefectApiDouble.wait_until(lambda: gone(heartbeat), timeout=20, what="its end")
    finally:
        for process in (heartbeat, task):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def test_it_refuses_to_start_without_its_runners_pipe(prefect_api, run_id) -> None:
    done = subprocess.run(
        HEARTBEAT_PROCESS,
        env=role_env(prefect_api, run_id),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "stdin must be a pipe from the flow runner" in done.stderr


def gone(process: psutil.Process) -> bool:
    """Ended (an orphan is reaped by PID 1 a moment later: a zombie counts as ended)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("mode", [None, "process"], ids=["default", "mode-set-by-the-run"])
def test_the_runner_beats_from_the_images_process_which_ends_even_with_a_killed_runner(
    prefect_api, prefect_api_tenant, run_id, tmp_path, mode
) -> None:
    """Prefect's own heartbeat process imports all of prefect, and a runner killed with
    SIGKILL leaves it beating for a dead run. The image's ends with the runner. A run that
    sets a mode keeps prefect's heartbeat."""
    extra = {} if mode is None else {MODE_ENV: mode}
    runner = start_runner(runner_env(prefect_api, run_id, prefect_api_tenant, tmp_path, **extra))
    heartbeat = None
    try:
        wait_task_running(prefect_api, run_id, runner)
        (heartbeat,) = heartbeat_children(runner)
        command = " ".join(heartbeat.cmdline())
        assert (OURS in command, PREFECTS in command) == (mode is None, mode is not None)
        runner.kill()
        runner.wait(timeout=10)
        if mode is None:
            prefect_api.wait_until(lambda: gone(heartbeat), timeout=15, what="its end")
        else:  # prefect's: orphaned, still running a while later
            time.sleep(2)
            assert not gone(heartbeat)
    finally:
        runner.kill()
        if heartbeat is not None:  # the orphan, whoever's it is
            with contextlib.suppress(psutil.NoSuchProcess):
                heartbeat.kill()


def test_a_run_longer_than_the_zombie_killers_window_is_kept_alive(
    make_prefect_api, tmp_path
) -> None:
    """The zombie killer fails the running task runs of a flow run whose heartbeat is older
    than its window (5 s here). Prefect's own heartbeat is off: only the image's beats."""
    api = make_prefect_api(services_speedup=120)
    tenant_id = api.create_tenant("test", slug="test")
    run_id = sleeps_run(api, tenant_id, seconds=15)
    env = runner_env(api, run_id, tenant_id, tmp_path, PREFECT__CLOUD__HEARTBEAT_INTERVAL="0.5")
    runner = start_runner(env)
    try:
        assert runner.wait(timeout=120) == 0, runner.stdout.read()
    finally:
        runner.kill()
    assert api.services.passes["zombie_killer"] >= 10  # it looked, every second
    task_run = sleeping_task_run(api, run_id)
    task_states = [state["state"] for state in api.task_run_states(task_run["id"])]
    assert not {"Failed", "Retrying"} & set(task_states), task_states
    assert api.flow_run(run_id)["state"] == "Success"
    assert beats(api) >= 15
