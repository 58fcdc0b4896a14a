"""The agent command line: built from settings, and accepted by prefect 1.2.4's own CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prefect.cli.agent import agent as prefect_agent_cli

from bootstrap.agent.command import agent_launch, docker_base_url, launcher_config
from bootstrap.api.client import ApiConfig
from bootstrap.settings import load_settings
from bootstrap.util.errors import SettingsError
from bootstrap.util.log import MASK

API = ApiConfig("http://127.0.0.1:4200/graphql")
TENANT = "4c5e27e7-1c6c-4f8c-9c36-1d2a0f5a6b01"


def prefect_parse(argv):
    """Parse argv with prefect's real `prefect agent <type> start` command (no run)."""
    assert argv[:2] == ("prefect", "agent")
    kind, start, *options = argv[2:]
    command = prefect_agent_cli.commands[kind].commands[start]
    return command.make_context(start, list(options)).params


def test_docker_agent_command_carries_every_setting() -> None:
    settings = load_settings(
        {
            "agent_name": "lume-agent",
            "agent_labels": ("gpu", "lume"),
            "agent_address": "http://:9090",
            "log_level": "DEBUG",
            "max_polls": "5",
            "no_cloud_logs": True,
            "docker_base_url": "unix:///run/user/docker.sock",
            "docker_no_pull": True,
            "docker_volumes": ("/data:/data:ro", "cache:/cache"),
            "docker_networks": ("host",),
            "docker_client_timeout": "90",
        }
    )
    launch = agent_launch(settings, API, TENANT, {})
    params = prefect_parse(launch.argv)
    assert params["api"] is None  # in the environment instead (see below)
    assert params["tenant_id"] == TENANT
    assert params["name"] == "lume-agent"
    assert params["label"] == ("gpu", "lume")
    assert params["agent_address"] == "http://:9090"
    assert params["log_level"] == "DEBUG"
    assert params["max_polls"] == 5
    assert params["no_cloud_logs"] is True
    assert params["base_url"] == "unix:///run/user/docker.sock"
    assert params["no_pull"] is True  # always: the launcher pulls (bootstrap.agent.image_pull)
    assert params["show_flow_logs"] is True
    assert params["volumes"] == ("/data:/data:ro", "cache:/cache")
    assert params["networks"] == ("host",)
    assert params["docker_client_timeout"] == 90
    assert launch.env["PREFECT__BACKEND"] == "server"
    assert launch.env["PREFECT__CLOUD__API"] == API.url
    assert launch.env["PREFECT__CLOUD__TENANT_ID"] == TENANT


def test_the_pull_policy_reaches_the_launcher_and_prefect_never_pulls() -> None:
    def launcher(**values):
        settings = load_settings(values)
        launch = agent_launch(settings, API, TENANT, {})
        assert prefect_parse(launch.argv)["no_pull"] is True
        return launcher_config(settings, {}, {})

    assert launcher().pull_policy is None  # image_pull.default_policy decides per image
    assert launcher(docker_no_pull=True).pull_policy == "Never"  # the alias
    assert launcher(docker_no_pull=True, docker_pull_policy="never").pull_policy == "Never"
    config = launcher(
        docker_pull_policy="always",
        docker_pull_attempts="5",
        docker_config_file="/run/secrets/docker-config.json",
    )
    assert (config.pull_policy, config.pull_attempts) == ("Always", 5)
    # the path only: the credentials stay in the file, out of the launcher's environment
    assert config.docker_config_file == "/run/secrets/docker-config.json"
    with pytest.raises(SettingsError, match="BOOTSTRAP_DOCKER_NO_PULL=true is the policy Never"):
        load_settings({"docker_no_pull": True, "docker_pull_policy": "Always"})


def test_kubernetes_agent_command() -> None:
    settings = load_settings(
        {
            "agent_type": "kubernetes",
            "kubernetes_namespace": "lume",
            "kubernetes_service_account_name": "flow-runner",
            "kubernetes_image_pull_secrets": ("regcred", "other"),
            "kubernetes_delete_finished_jobs": False,
        }
    )
    params = prefect_parse(agent_launch(settings, API, TENANT, {}).argv)
    assert params["namespace"] == "lume"
    assert params["service_account_name"] == "flow-runner"
    assert params["image_pull_secrets"] == "regcred,other"
    assert params["delete_finished_jobs"] is False  # --disable-job-deletion
    assert "base_url" not in params


def test_local_agent_command_has_no_random_hostname_label_by_default() -> None:
    settings = load_settings({"agent_type": "local", "local_import_paths": ("/flows",)})
    params = prefect_parse(agent_launch(settings, API, TENANT, {}).argv)
    assert params["import_paths"] == ("/flows",)
    assert params["hostname_label"] is False
    with_label = load_settings({"agent_type": "local", "local_hostname_label": True})
    assert prefect_parse(agent_launch(with_label, API, TENANT, {}).argv)["hostname_label"] is True


def test_docker_host_is_the_default_engine_url() -> None:
    settings = load_settings()
    assert docker_base_url(settings, {}) == "unix:///var/run/docker.sock"
    assert docker_base_url(settings, {"DOCKER_HOST": "tcp://dind:2375"}) == "tcp://dind:2375"


def test_flow_run_env_goes_through_the_environment_never_the_argv() -> None:
    settings = load_settings({"agent_env": {"API_TOKEN": "t0ken-value", "STAGE": "prod"}})
    launch = agent_launch(settings, API, TENANT, {})
    assert not any("t0ken-value" in arg for arg in launch.argv)  # argv is public (ps)
    assert json.loads(launch.env["PREFECT__CLOUD__AGENT__ENV_VARS"]) == {
        "API_TOKEN": "t0ken-value",
        "STAGE": "prod",
    }
    rendered = launch.render()
    assert "t0ken-value" not in rendered
    assert MASK in rendered
    assert "STAGE" in rendered


def test_prefect_reads_the_flow_run_env_back_from_its_config(tmp_path: Path) -> None:
    """PREFECT__CLOUD__AGENT__ENV_VARS round-trips through prefect's config loader."""
    import subprocess
    import sys

    settings = load_settings({"agent_env": {"A": "1", "QUOTES": 'it\'s "quoted"'}})
    launch = agent_launch(settings, API, TENANT, {})
    code = "import json, prefect; print(json.dumps(dict(prefect.config.cloud.agent.env_vars)))"
    env = {**os.environ, **launch.env, "PREFECT__HOME_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {"A": "1", "QUOTES": 'it\'s "quoted"'}


def test_the_api_url_and_its_credentials_never_reach_the_command_line(tmp_path: Path) -> None:
    """The URL travels as PREFECT__CLOUD__API: the agent's prefect reads it from there."""
    import subprocess
    import sys

    api = ApiConfig("https://bot:url-pass@prefect.example.org/graphql")
    launch = agent_launch(load_settings({}), api, TENANT, {})
    assert not any("prefect.example.org" in arg for arg in launch.command)  # ps shows argv
    assert "url-pass" not in launch.render()
    code = "import prefect; print(prefect.config.cloud.api)"
    env = {**os.environ, **launch.env, "PREFECT__HOME_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == api.url


def test_flow_run_variables_too_large_for_an_exec_are_a_settings_error() -> None:
    huge = {f"V{i}": "x" * 1000 for i in range(140)}  # about 140 kB as one variable
    with pytest.raises(SettingsError, match=r"BOOTSTRAP_AGENT_ENV.*Linux allows one variable"):
        agent_launch(load_settings({"agent_env": huge}), API, TENANT, {})
    agent_launch(load_settings({"agent_env": dict(list(huge.items())[:100])}), API, TENANT, {})


def test_the_agent_reads_the_configuration_file_the_bootstrap_found(tmp_path: Path) -> None:
    """A config.toml the runtime user's prefect would not look for (lume-services mounts it
    at /root/.prefect/) is named to the agent, so its other settings apply there too."""
    settings = load_settings({})
    assert (
        "PREFECT__USER_CONFIG_PATH"
        not in agent_launch(settings, API, TENANT, {"HOME": str(tmp_path)}).env
        or Path("/root/.prefect/config.toml").is_file()
    )
    config = tmp_path / ".prefect" / "config.toml"
    config.parent.mkdir()
    config.write_text('[server]\nhost = "http://apollo"\n')
    launch = agent_launch(settings, API, TENANT, {"HOME": str(tmp_path)})
    assert launch.env["PREFECT__USER_CONFIG_PATH"] == str(config)
