"""``python -m prefect_api_double``: serve, and the helper subcommands."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_api_double.__main__ import main

from .helpers import OK_FLOW, post

REPO = Path(__file__).resolve().parents[2]


def test_serve_prints_the_url_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_api_double", "serve", "--verbose"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _ = post(url + "/graphql", "{ hello }")
        assert status == 200
        # logged once the answer is sent: read it before stopping the server
        assert "POST /graphql query hello -> 200" in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_serve_stops_on_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect_api_double", "serve", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_helper_subcommands(prefect_api, capsys):
    def run(*argv):
        assert main(list(argv)) == 0
        return capsys.readouterr().out.strip()

    tenant = run("create-tenant", "--api", prefect_api.url, "CLI Tenant")
    assert prefect_api.tenant(tenant)["slug"] == "cli-tenant"
    project = run("create-project", "--api", prefect_api.url, "proj", "--tenant-id", tenant)
    assert prefect_api.projects(tenant)[0]["id"] == project
    flow_id = run(
        "register-flow", "--api", prefect_api.url, "--project", "proj", "--label", "x", str(OK_FLOW)
    )
    assert "x" in prefect_api.flow(flow_id)["run_config"]["labels"]
    run_id = run(
        "create-flow-run",
        "--api",
        prefect_api.url,
        "--flow-id",
        flow_id,
        "--param",
        "n=7",
        "--param",
        "who=plain text",
        "--label",
        "x",
        "--run-name",
        "cli-run",
    )
    flow_run = prefect_api.flow_run(run_id)
    assert flow_run["parameters"] == {"n": 7, "who": "plain text"}
    assert (flow_run["labels"], flow_run["name"]) == (["x"], "cli-run")
    with pytest.raises(SystemExit):
        main(["create-flow-run", "--api", prefect_api.url])
