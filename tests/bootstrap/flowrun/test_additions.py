"""bootstrap.flowrun.additions and what agent_launch makes of it: proxies, CA, secret files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap.agent.command import agent_launch
from bootstrap.api.client import ApiConfig, resolve_api
from bootstrap.flowrun.additions import (
    CA_IN_FLOW_RUNS,
    CACHE_DIR,
    FlowRunAdditions,
    Mount,
    ca_for_docker_flow_runs,
    docker_flow_run_api,
    extras_for_flow_runs,
    host_path,
    own_container_id,
)
from bootstrap.settings import load_settings
from bootstrap.startup.step5_launch import read_env_files
from bootstrap.util.errors import SettingsError
from bootstrap.util.log import MASK

API = ApiConfig("http://prefect.example.org:4200/graphql")
TENANT = "4c5e27e7-1c6c-4f8c-9c36-1d2a0f5a6b01"
PROXY = {"HTTPS_PROXY": "http://proxy.example.org:3128", "NO_PROXY": "intranet.example.org"}


def test_proxies_reach_the_agent_and_every_flow_run() -> None:
    launch = agent_launch(load_settings({"agent_env": {"A": "1"}}), API, TENANT, PROXY)
    flow_run_env = json.loads(launch.env["PREFECT__CLOUD__AGENT__ENV_VARS"])
    assert flow_run_env["HTTPS_PROXY"] == "http://proxy.example.org:3128"
    assert "prefect.example.org" in flow_run_env["NO_PROXY"].split(",")
    assert flow_run_env["A"] == "1"
    assert "prefect.example.org" in launch.env["NO_PROXY"].split(",")  # the agent's own
    settings = load_settings({"agent_env": {"HTTPS_PROXY": "http://other:3128"}})
    flow_run_env = json.loads(
        agent_launch(settings, API, TENANT, PROXY).env["PREFECT__CLOUD__AGENT__ENV_VARS"]
    )
    assert flow_run_env["HTTPS_PROXY"] == "http://other:3128"  # the operator's own wins


MOUNTINFO = """\
98 81 254:0 /etc/ssl/certs/ca.crt /run/ca.pem ro,relatime - ext4 /dev/vda rw
100 81 254:0 /var/lib/docker/containers/2f042e425cc11d1d4a3e301606b794b4e8b1a98e6f85900ddd890c5796e0ff8b/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
"""  # noqa: E501 - mountinfo lines are long


def test_the_agents_own_container_and_its_host_paths() -> None:
    assert (
        own_container_id(MOUNTINFO)
        == "2f042e425cc11d1d4a3e301606b794b4e8b1a98e6f85900ddd890c5796e0ff8b"
    )
    assert own_container_id("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n") is None  # not in Docker
    mounts = [Mount("/srv/certs", "/run/certs"), Mount("/srv/certs/lume", "/run/certs/lume")]
    assert host_path("/run/certs/lume/ca.pem", mounts) == "/srv/certs/lume/ca.pem"
    assert host_path("/run/certs/other.pem", mounts) == "/srv/certs/other.pem"
    assert host_path("/etc/ssl/ca.pem", mounts) is None


def test_the_ca_reaches_docker_flow_runs_as_a_mounted_file_only() -> None:
    mounts = [Mount("/srv/proxy-ca.crt", "/run/ca.pem")]
    added = ca_for_docker_flow_runs({"EXTRA_CA_CERT": "/run/ca.pem"}, mounts)
    assert added.volumes == [f"/srv/proxy-ca.crt:{CA_IN_FLOW_RUNS}:ro"]
    assert added.env == {"EXTRA_CA_CERT": CA_IN_FLOW_RUNS}  # a path, not the certificate
    text = ca_for_docker_flow_runs({"EXTRA_CA_CERT": "-----BEGIN CERTIFICATE-----\n..."}, mounts)
    assert (text.env, text.volumes) == ({}, [])
    assert "PEM text: flow runs do not get it" in text.warnings[0]
    baked = ca_for_docker_flow_runs({"EXTRA_CA_CERT": "/etc/ca.pem"}, mounts)
    assert "not on a host mount" in baked.warnings[0]
    launch = agent_launch(load_settings({}), API, TENANT, {}, additions=added)
    assert launch.argv[launch.argv.index(f"/srv/proxy-ca.crt:{CA_IN_FLOW_RUNS}:ro") - 1] == (
        "--volume"
    )


def test_secrets_from_files_reach_flow_runs_and_are_masked(tmp_path: Path) -> None:
    launch = agent_launch(
        load_settings({"agent_env_files": {"DB": str(tmp_path / "db")}}),
        API,
        TENANT,
        {},
        secret_env={"DB": "s3cret-from-file"},
    )
    assert json.loads(launch.env["PREFECT__CLOUD__AGENT__ENV_VARS"])["DB"] == "s3cret-from-file"
    assert "s3cret-from-file" not in launch.render()
    assert MASK in launch.render()


def test_the_api_key_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("pa-key-from-file\n")
    api = resolve_api({"PREFECT__CLOUD__API_KEY_FILE": str(key_file)})
    assert api.api_key == "pa-key-from-file"
    launch = agent_launch(load_settings({}), api, TENANT, {})
    assert launch.env["PREFECT__CLOUD__API_KEY"] == "pa-key-from-file"  # the agent gets it
    assert "pa-key-from-file" not in launch.render()
    with pytest.raises(SettingsError, match="not both"):
        resolve_api({"PREFECT__CLOUD__API_KEY_FILE": str(key_file), "PREFECT__CLOUD__API_KEY": "x"})
    with pytest.raises(SettingsError, match=r"PREFECT__CLOUD__API_KEY_FILE: cannot read"):
        resolve_api({"PREFECT__CLOUD__API_KEY_FILE": str(tmp_path / "missing")})


def test_an_unreadable_secret_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    settings = load_settings({"agent_env_files": {"DB_PASSWORD": str(tmp_path / "missing")}})
    with pytest.raises(SettingsError, match=r"BOOTSTRAP_AGENT_ENV_FILES DB_PASSWORD: cannot read"):
        read_env_files(settings)
    (tmp_path / "empty").write_text("\n")
    settings = load_settings({"agent_env_files": {"DB_PASSWORD": str(tmp_path / "empty")}})
    with pytest.raises(SettingsError, match="is empty"):
        read_env_files(settings)


def test_the_agents_extras_and_cache_go_to_flow_runs() -> None:
    mounts = [
        Mount("/var/lib/docker/volumes/agent-cache/_data", CACHE_DIR, volume="agent-cache"),
        Mount("/srv/ca.pem", "/certs/ca.pem"),
    ]
    environ = {"EXTRA_PIP_PACKAGES": "lume-model==1.7.1", "EXTRA_PIP_INSTALLER": "uv"}
    added = extras_for_flow_runs(environ, mounts)
    assert added.env == environ
    assert added.volumes == ["agent-cache:/var/cache/prefect-agent"]  # by name: the same volume
    assert extras_for_flow_runs({"EXTRA_PIP_INSTALLER": "uv"}, mounts) == FlowRunAdditions()
    launch = agent_launch(load_settings({}), API, TENANT, {}, additions=added)
    flow_env = json.loads(launch.env["PREFECT__CLOUD__AGENT__ENV_VARS"])
    assert flow_env["EXTRA_PIP_PACKAGES"] == "lume-model==1.7.1"
    assert "agent-cache:/var/cache/prefect-agent" in launch.argv
    # a volume is no host path: the CA check only follows bind mounts
    assert host_path(f"{CACHE_DIR}/x", mounts) is None


@pytest.mark.parametrize(
    ("url", "networks", "expected", "warned"),
    [
        # prefect alone would send these flow runs to http://host.docker.internal:4200
        ("http://localhost:4299/graphql", ["host"], "http://127.0.0.1:4299/graphql", False),
        ("http://127.0.0.1:4200/graphql", ["host"], "http://127.0.0.1:4200/graphql", False),
        ("http://localhost:4299/graphql", [], "http://host.docker.internal:4299/graphql", True),
        ("http://127.0.0.1:4200", ["lume"], "http://host.docker.internal:4200", True),
        ("http://prefect-apollo:4200/graphql", [], None, False),  # not ours to change
    ],
)
def test_flow_runs_reach_a_server_on_this_hosts_loopback(url, networks, expected, warned) -> None:
    added = docker_flow_run_api(url, networks)
    assert added.env.get("PREFECT__CLOUD__API") == expected
    assert bool(added.warnings) == warned
