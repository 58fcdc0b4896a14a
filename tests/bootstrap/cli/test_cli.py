"""The CLI as operators run it: real processes, exit codes, and a real agent at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import yaml

from prefect_api_double import PrefectApiDouble
from testbed.net import free_port


def bootstrap(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 120):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOOTSTRAP_", "PREFECT__"))}
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_invalid_settings_exit_2_without_a_traceback() -> None:
    result = bootstrap("run", env={"BOOTSTRAP_AGENT_TYPE": "swarm"})
    assert result.returncode == 2
    assert "invalid setting BOOTSTRAP_AGENT_TYPE='swarm'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_entrypoint_leaves_a_bad_log_level_to_the_command() -> None:
    """The entrypoint logs at INFO; the command that reads the settings reports it (exit 2)."""
    env = {"BOOTSTRAP_LOG_LEVEL": "bogus"}
    ran = bootstrap("entrypoint", "--", sys.executable, "-c", "print('ran')", env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ran\n"
    assert "Traceback" not in ran.stderr
    result = bootstrap("entrypoint", "--", sys.executable, "-m", "bootstrap", "run", env=env)
    assert result.returncode == 2
    assert "invalid setting BOOTSTRAP_LOG_LEVEL='bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch, capsys) -> None:
    from bootstrap import cli
    from bootstrap.cli import options

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(options, "load_settings", boom)
    with pytest.raises(SystemExit) as info:
        cli.main(["settings"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected RuntimeError: boom (a bug: BOOTSTRAP_LOG_LEVEL=DEBUG")
    assert "Traceback" not in err


def test_each_subcommand_offers_only_the_options_of_its_steps() -> None:
    """``tenant --help`` lists no Kubernetes options; ``agent`` and ``run`` list them all. A
    setting a subcommand does not offer still arrives (and is checked) from the environment."""
    tenant_help = bootstrap("tenant", "--help")
    assert tenant_help.returncode == 0, tenant_help.stderr
    assert "--tenant-slug" in tenant_help.stdout
    assert "--wait-timeout" in tenant_help.stdout
    assert "--kubernetes-namespace" not in tenant_help.stdout
    assert "--docker-volumes" not in tenant_help.stdout
    wait_help = bootstrap("wait", "--help").stdout
    assert "--wait-timeout" in wait_help
    assert "--tenant" not in wait_help
    for command in ("agent", "run"):
        assert "--kubernetes-namespace" in bootstrap(command, "--help").stdout
    refused = bootstrap("tenant", "--kubernetes-namespace", "x")
    assert refused.returncode == 2
    assert "No such option: --kubernetes-namespace" in refused.stderr
    checked = bootstrap("tenant", env={"BOOTSTRAP_AGENT_TYPE": "swarm"})
    assert checked.returncode == 2
    assert "invalid setting BOOTSTRAP_AGENT_TYPE='swarm'" in checked.stderr


def test_unreachable_server_exits_3_and_starts_no_agent() -> None:
    env = {"PREFECT__CLOUD__API": "http://127.0.0.1:1", "BOOTSTRAP_WAIT_TIMEOUT": "1"}
    result = bootstrap("run", env=env)
    assert result.returncode == 3
    assert "the Prefect Server at http://127.0.0.1:1 did not answer within 1 s" in result.stderr
    assert "Starting the agent" not in result.stderr
    assert "Traceback" not in result.stderr


def test_agent_print_masks_secrets(prefect_api: PrefectApiDouble) -> None:
    tenant_id = prefect_api.create_tenant("default", slug="default")
    env = {
        "PREFECT__CLOUD__API": prefect_api.url,
        "BOOTSTRAP_AGENT_ENV": "DB_PASSWORD=hunter2-xyz,STAGE=test",
        "BOOTSTRAP_AGENT_LABELS": "a,b",
    }
    result = bootstrap("agent", "--print", env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2-xyz" not in result.stdout + result.stderr
    assert f"--tenant-id {tenant_id}" in result.stdout
    assert "--label a --label b" in result.stdout


def test_agent_without_a_tenant_says_what_to_do(prefect_api: PrefectApiDouble) -> None:
    result = bootstrap("agent", "--print", env={"PREFECT__CLOUD__API": prefect_api.url})
    assert result.returncode == 1
    assert "tenant 'default' does not exist" in result.stderr


def test_settings_command_prints_effective_settings_masked(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("projects: [{name: p, description: d}]\nagent_labels: [x]\n")
    env = {"BOOTSTRAP_AGENT_ENV": '{"API_TOKEN": "tok-123456"}'}
    result = bootstrap("settings", "--settings-file", str(settings_file), env=env)
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["projects"] == [{"name": "p", "description": "d"}]
    assert shown["agent_labels"] == ["x"]
    assert shown["agent_env"] == {"API_TOKEN": "********"}


def test_tenant_and_projects_commands_are_idempotent(prefect_api: PrefectApiDouble) -> None:
    env = {
        "PREFECT__CLOUD__API": prefect_api.url,
        "BOOTSTRAP_TENANT": "LUME",
        "BOOTSTRAP_PROJECTS": "a,b",
    }
    first = bootstrap("projects", env=env)
    second = bootstrap("projects", env=env)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert [line.split("\t")[0] for line in first.stdout.splitlines()] == ["a", "b"]
    tenant = bootstrap("tenant", env=env)
    assert tenant.stdout.strip() == prefect_api.tenants()[0]["id"]


def test_run_execs_a_real_agent_that_registers_and_polls(
    prefect_api: PrefectApiDouble, tmp_path: Path
) -> None:
    """run: wait, tenant, projects, then exec `prefect agent local start` for two polls."""
    env = {
        "PREFECT__CLOUD__API": prefect_api.url,
        "PREFECT__HOME_DIR": str(tmp_path / "prefect-home"),
        "BOOTSTRAP_TENANT": "LUME",
        "BOOTSTRAP_PROJECTS": "lume",
        "BOOTSTRAP_AGENT_TYPE": "local",
        "BOOTSTRAP_AGENT_LABELS": "lume,cpu",
        "BOOTSTRAP_AGENT_NAME": "bootstrap-test",
        "BOOTSTRAP_AGENT_ADDRESS": f"http://127.0.0.1:{free_port()}",
        "BOOTSTRAP_MAX_POLLS": "2",
    }
    result = bootstrap("run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    tenant_id = prefect_api.tenants()[0]["id"]
    (agent,) = prefect_api.agents()
    assert agent["name"] == "bootstrap-test"
    assert agent["type"] == "LocalAgent"
    assert sorted(agent["labels"]) == ["cpu", "lume"]
    assert agent["tenant_id"] == tenant_id
    polls = prefect_api.requests_for("get_runs_in_queue")
    assert len(polls) == 2
    assert {poll.variables["input"]["tenant_id"] for poll in polls} == {tenant_id}
    # The agent never had to guess its tenant: no unfiltered `query { tenant { id } }`.
    assert prefect_api.fields_called().count("tenant") == 1  # the bootstrap's own lookup
