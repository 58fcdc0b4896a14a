"""bootstrap.flowrun: a flow-run container speaks for its run (Failed with the reason), and
prefect's flow runner under ``python -m bootstrap.flowrun`` turns a stop signal into a Failed
state. Against the API double over real HTTP; the flow runner is prefect's own, in a
subprocess."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
from pathlib import Path

import pytest

from bootstrap.flowrun.report import FLOW_RUN_COMMAND, FlowRunRole
from testbed.packages import PackageServer, make_tls

from .runs import role_env, runner_env, sleeps_run, start_runner, wait_task_running


@pytest.fixture
def run_id(prefect_api, prefect_api_tenant) -> str:
    return sleeps_run(prefect_api, prefect_api_tenant)


def test_the_role_is_a_flow_run_launched_by_an_agent(prefect_api, run_id) -> None:
    env = role_env(prefect_api, run_id)
    assert FlowRunRole.detect(env, ["prefect", "execute", "flow-run"]) == FlowRunRole(
        run_id, prefect_api.url
    )
    assert FlowRunRole.detect(env, ["prefect-agent-bootstrap", "run"]) is None
    assert FlowRunRole.detect({}, ["prefect", "execute", "flow-run"]) is None


def test_fail_ends_a_live_run_with_the_reason_and_leaves_a_finished_one(
    prefect_api, run_id
) -> None:
    role = FlowRunRole(run_id, prefect_api.url)
    assert role.fail("the flow-run container could not install its extra packages (exit 6)")
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Failed"
    assert run["serialized_state"]["message"].endswith("extra packages (exit 6)")
    assert any("exit 6" in log["message"] for log in prefect_api.logs(run_id))
    assert not role.fail("a second reason")  # finished: left as it is
    assert prefect_api.flow_run(run_id)["serialized_state"]["message"].endswith("(exit 6)")
    assert not FlowRunRole(run_id, "http://127.0.0.1:9/").fail("unreachable")  # no raise


def test_a_stop_signal_during_the_run_ends_it_failed_with_the_signal(
    prefect_api, prefect_api_tenant, run_id, tmp_path
) -> None:
    runner = start_runner(runner_env(prefect_api, run_id, prefect_api_tenant, tmp_path))
    try:
        wait_task_running(prefect_api, run_id, runner)
        assert prefect_api.flow_run(run_id)["state"] == "Running"
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        runner.kill()
    run = prefect_api.flow_run(run_id)
    assert run["state"] == "Failed", runner.stdout.read()
    assert run["serialized_state"]["message"].startswith(
        "the flow-run container was stopped by SIGTERM"
    )


def test_a_private_ca_given_to_requests_alone_is_trusted_too(tmp_path) -> None:
    """Prefect's client (requests) reads REQUESTS_CA_BUNDLE; urllib does not. An API behind
    a private CA set up that way would get prefect's requests and none of the container's."""
    ca, cert, key = make_tls(tmp_path / "tls")
    (tmp_path / "root").mkdir()
    with PackageServer(tmp_path / "root", tls=(cert, key)) as server:
        env = {"PREFECT__CONTEXT__FLOW_RUN_ID": "run", "PREFECT__CLOUD__API": server.url}
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            FlowRunRole.detect(env, FLOW_RUN_COMMAND).heartbeat()
        for bundle in (ca, hashed_directory(ca, tmp_path / "certs")):  # requests takes either
            trusting = {**env, "REQUESTS_CA_BUNDLE": str(bundle)}
            role = FlowRunRole.detect(trusting, FLOW_RUN_COMMAND)
            with pytest.raises(urllib.error.HTTPError, match="501"):  # through TLS: a file server
                role.heartbeat()


def hashed_directory(ca: Path, directory: Path) -> Path:
    """A directory of certificates named by their subject hash, as OpenSSL looks them up."""
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    directory.mkdir()
    (directory / f"{subject_hash}.0").write_bytes(ca.read_bytes())
    return directory
