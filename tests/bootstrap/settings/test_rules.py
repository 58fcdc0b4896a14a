"""bootstrap.settings.rules: the value rules, and the settings that use them."""

from __future__ import annotations

import os

import pytest

from bootstrap.settings import load_settings
from bootstrap.settings.rules import check_volume, volume_warnings
from bootstrap.util.errors import SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BOOTSTRAP_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("tenant", "x" * 256),  # the server stores at most 255
        ("tenant", "lu\x85me"),  # C1 control (NEL)
        ("tenant", "lume\u202eecivres"),  # right-to-left override: reads as something else
        ("projects", ["models\u2066"]),
        ("agent_labels", ["gpu\u200f"]),
        ("agent_name", "agent\x9b"),
    ],
)
def test_names_and_labels_refuse_overlong_and_control_characters(setting, value) -> None:
    with pytest.raises(SettingsError, match=r"control characters|at most 255"):
        load_settings({setting: value})


def test_a_name_of_255_characters_is_fine() -> None:
    assert load_settings({"tenant": "x" * 255}).tenant == "x" * 255


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("/a:/b:xyz", "is not a mount mode"),
        ("/a:/b:ro,rw", "is not a mount mode"),
        ("./data:/data", "absolute host path or a volume name"),
        ("data/sub:/data", "absolute host path or a volume name"),
        ("/a:b", "container path must be absolute"),
        ("/a:/b:ro:x", "is not a volume spec"),
    ],
)
def test_malformed_volume_specs_are_refused(spec, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        check_volume(spec)
    with pytest.raises(SettingsError, match=r"BOOTSTRAP_DOCKER_VOLUMES|--docker-volumes"):
        load_settings({"docker_volumes": [spec]})


@pytest.mark.parametrize("spec", ["/data:/data", "/data:/data:ro,z", "cache:/cache", "/scratch"])
def test_good_volume_specs_pass(spec) -> None:
    assert check_volume(spec) == spec


def test_volumes_that_hand_over_the_host_are_warned_about() -> None:
    warnings = volume_warnings(
        [
            "/:/host:ro",
            "/var/run/docker.sock:/var/run/docker.sock",
            "/etc:/etc",
            "/data:/data",
            "/run/podman/podman.sock:/var/run/docker.sock",  # a socket by its target
            "/srv/docker/mysql/mysqld.sock:/run/mysqld/mysqld.sock",  # not Docker's
            "sockets:/var/run/docker.sock",  # a named volume: not the host's
        ]
    )
    assert len(warnings) == 4
    assert "the host's / (read-only)" in warnings[0]
    assert "docker.sock (read-write)" in warnings[1]
    assert "the host's /run/podman/podman.sock" in warnings[3]
    assert all("whoever can register a flow controls this host" in w for w in warnings)


def test_flow_run_policy_settings() -> None:
    settings = load_settings(
        {"flow_run_allow": ["devices", "binds"], "flow_run_allowed_paths": ["/data"]}
    )
    assert settings.flow_run_allow == ["devices", "binds"]
    with pytest.raises(SettingsError, match="is not a flow-run policy rule"):
        load_settings({"flow_run_allow": ["gpus"]})
    with pytest.raises(SettingsError, match="is not an absolute host path"):
        load_settings({"flow_run_allowed_paths": ["data"]})


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"docker_memory": "2g", "flow_run_max_memory": "1g"}, "BOOTSTRAP_FLOW_RUN_MAX_MEMORY=1g"),
        ({"docker_cpus": 3, "flow_run_max_cpus": 2}, "BOOTSTRAP_FLOW_RUN_MAX_CPUS=2.0"),
        ({"docker_pids_limit": 500, "flow_run_max_pids": 100}, "BOOTSTRAP_FLOW_RUN_MAX_PIDS=100"),
        ({"docker_pids_limit": -1, "flow_run_max_pids": 100}, "-1 (no limit) is above"),
        ({"docker_memory": "0", "flow_run_max_memory": "1g"}, "0 (no limit) is above"),
        (
            {"kubernetes_job_memory_limit": "3Gi", "flow_run_max_memory": "2g"},
            "BOOTSTRAP_FLOW_RUN_MAX_MEMORY=2g",
        ),
        (
            {"kubernetes_job_cpu_limit": "2500m", "flow_run_max_cpus": 2},
            "BOOTSTRAP_FLOW_RUN_MAX_CPUS=2.0",
        ),
    ],
)
def test_a_default_above_its_ceiling_is_refused(values, named) -> None:
    """Every run would get it: past the ceiling (Docker) or refused by it (Kubernetes)."""
    with pytest.raises(SettingsError, match="a default must fit its ceiling") as refusal:
        load_settings(values)
    assert named in str(refusal.value)
    fitting = {key: value for key, value in values.items() if key.startswith("flow_run_max")}
    load_settings(fitting)  # the ceiling alone is fine
