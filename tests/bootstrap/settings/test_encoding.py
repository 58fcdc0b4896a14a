"""bootstrap.settings.encoding: settings back into BOOTSTRAP_* values, the parser's inverse."""

from __future__ import annotations

import os

import pytest

from bootstrap.settings import env_name, load_settings
from bootstrap.settings.encoding import as_data, changed, encode
from bootstrap.util.log import MASK

CUSTOM = {
    "tenant": "LUME Services",
    "projects": ["models", {"name": "runs", "description": "all runs"}],
    "agent_type": "kubernetes",
    "agent_labels": ["lume", "k8s"],
    "agent_env": {"LUME_DB": "mysql://db", "A": "x=y,z"},
    "max_polls": 7,
    "show_flow_logs": False,
    "kubernetes_labels": {"team": "lume"},
    "kubernetes_image_pull_policy": "IfNotPresent",
    "kubernetes_job_memory_limit": "4Gi",
    "wait_timeout": 30.5,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BOOTSTRAP_"):
            monkeypatch.delenv(name)


def test_encoded_settings_parse_back_to_the_same_settings(monkeypatch) -> None:
    original = load_settings(CUSTOM)
    encoded = {env_name(name): encode(value) for name, value in changed(original).items()}
    for name, value in encoded.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_only_changes_are_encoded_and_a_derived_slug_is_not_a_change() -> None:
    assert changed(load_settings({})) == {}
    assert set(changed(load_settings({"tenant": "LUME Services"}))) == {"tenant"}
    assert changed(load_settings({"tenant_slug": "other"})) == {"tenant_slug": "other"}


def test_as_data_masks_secret_agent_env_values() -> None:
    data = as_data(load_settings({"agent_env": {"DB_PASSWORD": "hunter2", "A": "1"}}))
    assert data["agent_env"] == {"DB_PASSWORD": MASK, "A": "1"}
    assert data["agent_type"] == "docker"  # plain values, not enums
