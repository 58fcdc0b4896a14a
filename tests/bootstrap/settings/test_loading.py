"""Settings: sources, precedence, parsing, and errors that name the setting and value."""

from __future__ import annotations

import pytest

from bootstrap.settings import AgentType, ProjectSpec, load_settings
from bootstrap.util.errors import SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("BOOTSTRAP_"):
            monkeypatch.delenv(name)


def error_of(**cli) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(cli)
    return str(info.value)


def test_defaults_are_a_docker_agent_on_loopback_and_kubernetes_on_all_interfaces() -> None:
    settings = load_settings()
    assert settings.agent_type is AgentType.docker
    # the health check runs inside the container; nothing outside needs (or may poke) the port
    assert settings.health_address() == "http://127.0.0.1:8080"
    assert load_settings({"agent_type": "local"}).health_address() == "http://127.0.0.1:8080"
    # the kubelet probes the pod's own address
    assert load_settings({"agent_type": "kubernetes"}).health_address() == "http://:8080"
    assert load_settings({"agent_address": "http://:9000"}).health_address() == "http://:9000"
    assert settings.tenant == "default"
    assert settings.tenant_slug == "default"
    assert settings.projects == []


def test_lists_from_env_accept_csv_newlines_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_AGENT_LABELS", "gpu, lume\nslac,gpu")
    monkeypatch.setenv("BOOTSTRAP_PROJECTS", '["a", {"name": "b", "description": "B"}]')
    monkeypatch.setenv("BOOTSTRAP_AGENT_ENV", "A=1,B=x=y")
    settings = load_settings()
    assert settings.agent_labels == ["gpu", "lume", "slac"]  # stripped, deduplicated
    assert settings.projects == [ProjectSpec(name="a"), ProjectSpec(name="b", description="B")]
    assert settings.agent_env == {"A": "1", "B": "x=y"}


def test_precedence_cli_over_env_over_file(monkeypatch, tmp_path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        "tenant: from-file\nagent-type: local\nprojects:\n  - name: p\n    description: d\n"
    )
    monkeypatch.setenv("BOOTSTRAP_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("BOOTSTRAP_TENANT", "from-env")
    settings = load_settings({"agent_labels": ("x",)})
    assert settings.tenant == "from-env"  # env beats the file
    assert settings.agent_type is AgentType.local  # the file beats the default
    assert settings.projects == [ProjectSpec(name="p", description="d")]
    assert load_settings({"tenant": "from-cli"}).tenant == "from-cli"  # CLI beats env


def test_slug_is_derived_and_a_given_slug_must_be_a_slug() -> None:
    assert load_settings({"tenant": "LUME Services"}).tenant_slug == "lume-services"
    message = error_of(tenant_slug="LUME Services")
    assert "invalid setting --tenant-slug='LUME Services'" in message
    assert "did you mean 'lume-services'" in message


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("BOOTSTRAP_AGENT_TYPE", "dockr", "permitted: 'docker', 'kubernetes', 'local'"),
        ("BOOTSTRAP_WAIT_TIMEOUT", "-1", "more than 0"),
        ("BOOTSTRAP_WAIT_TIMEOUT", "soon", "not a valid float"),
        ("BOOTSTRAP_AGENT_ADDRESS", "http://:notaport", "invalid port"),
        ("BOOTSTRAP_AGENT_ADDRESS", "localhost:8080", "http://[HOST]:PORT"),
        ("BOOTSTRAP_AGENT_ADDRESS", "http://:0", "between 1 and 65535"),
        ("BOOTSTRAP_LOG_LEVEL", "LOUD", "permitted: 'DEBUG'"),
        ("BOOTSTRAP_MAX_POLLS", "0", "positive integer"),
        ("BOOTSTRAP_DOCKER_VOLUMES", "relative:path", "must be absolute"),
        ("BOOTSTRAP_DOCKER_NETWORKS", "bad name", "not a Docker network name"),
        ("BOOTSTRAP_DOCKER_BASE_URL", "ftp://engine", "not a Docker engine URL"),
        ("BOOTSTRAP_KUBERNETES_NAMESPACE", "Bad_NS", "RFC 1123"),
        ("BOOTSTRAP_PROJECTS", "a,a", "repeated: a"),
        ("BOOTSTRAP_NO_CLOUD_LOGS", "maybe", "could not be parsed to a boolean"),
    ],
)
def test_each_bad_value_is_named_with_its_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert f"invalid setting {env}" in message
    assert expected in message
    if env != "BOOTSTRAP_PROJECTS":
        assert repr(value) in message


def test_an_unknown_key_inside_a_project_is_not_an_unknown_setting(monkeypatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_PROJECTS", '[{"nam": "x"}]')
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "invalid setting BOOTSTRAP_PROJECTS[0][nam]=" in message
    assert "extra fields not permitted" in message
    assert "unknown setting" not in message


def test_labels_with_control_characters_are_rejected(monkeypatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_AGENT_LABELS", '["ok", "bad\\u0007bell"]')
    with pytest.raises(SettingsError, match=r"BOOTSTRAP_AGENT_LABELS\[1\].*control characters"):
        load_settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lume docker", "contains whitespace or ';': separate labels with commas"),
        ("lume;docker", "contains whitespace or ';'"),
        ("[lume,docker]", r"is not a JSON list \(\[\"a\", \"b\"\]\).*without brackets, write a,b"),
    ],
)
def test_labels_that_cannot_be_what_was_meant_are_refused(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("BOOTSTRAP_AGENT_LABELS", value)
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_a_misspelt_variable_is_refused_with_the_name_meant(monkeypatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_TENNANT", "slac")
    monkeypatch.setenv("BOOTSTRAP_AGENT_LABEL", "lume")
    monkeypatch.setenv("BOOTSTRAP_XYZZY", "x")
    message = error_of()
    assert "unknown setting BOOTSTRAP_TENNANT (did you mean BOOTSTRAP_TENANT?)" in message
    assert "unknown setting BOOTSTRAP_AGENT_LABEL (did you mean BOOTSTRAP_AGENT_LABELS?)" in message
    assert "unknown setting BOOTSTRAP_XYZZY\n" in message  # nothing close to suggest


def test_the_settings_file_variable_is_not_unknown(monkeypatch, tmp_path) -> None:
    (tmp_path / "s.yaml").write_text("tenant: lume\n")
    monkeypatch.setenv("BOOTSTRAP_SETTINGS_FILE", str(tmp_path / "s.yaml"))
    assert load_settings().tenant == "lume"


def test_env_names_must_be_valid_and_values_are_hidden_in_errors(monkeypatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_AGENT_ENV", '{"API_TOKEN": "s3cr3t-value", "1BAD": "x"}')
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "'1BAD' is not a valid environment variable name" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_undecodable_json_in_env_is_a_settings_error(monkeypatch) -> None:
    monkeypatch.setenv("BOOTSTRAP_AGENT_LABELS", '["unterminated')
    with pytest.raises(
        SettingsError, match=r"invalid setting BOOTSTRAP_AGENT_LABELS=.*cannot parse"
    ):
        load_settings()


def test_unknown_key_in_the_settings_file_suggests_the_right_one(tmp_path) -> None:
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text("agent_lables: [a]\n")
    with pytest.raises(
        SettingsError,
        match=rf"unknown setting 'agent_lables' in {settings_file} \(did you mean 'agent_labels'",
    ):
        load_settings(settings_file=settings_file)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"tenant: [unclosed\n", "not valid YAML"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"tenant: \xff\xfe\n", "is not UTF-8 text"),
    ],
)
def test_malformed_settings_files_are_reported(tmp_path, content: bytes, expected: str) -> None:
    settings_file = tmp_path / "s.yaml"
    settings_file.write_bytes(content)
    with pytest.raises(SettingsError, match=expected):
        load_settings(settings_file=settings_file)


def test_missing_settings_file_is_reported(tmp_path) -> None:
    with pytest.raises(SettingsError, match=r"cannot read settings file .*missing\.yaml"):
        load_settings(settings_file=tmp_path / "missing.yaml")


def test_secret_values_are_those_with_secret_looking_names() -> None:
    settings = load_settings({"agent_env": {"AWS_SECRET_ACCESS_KEY": "abc", "REGION": "us"}})
    assert settings.secret_values() == ["abc"]


def test_log_level_and_agent_type_ignore_case() -> None:
    settings = load_settings({"log_level": "debug", "agent_type": "Kubernetes"})
    assert settings.log_level.value == "DEBUG"
    assert settings.agent_type is AgentType.kubernetes


def test_mappings_merge_key_by_key_across_sources(monkeypatch, tmp_path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("agent_env:\n  A: from-file\n  B: from-file\n")
    monkeypatch.setenv("BOOTSTRAP_AGENT_ENV", "B=from-env,C=from-env")
    merged = load_settings({"agent_env": {"C": "from-cli", "D": "from-cli"}}, settings_file)
    assert merged.agent_env == {"A": "from-file", "B": "from-env", "C": "from-cli", "D": "from-cli"}
    assert load_settings({}, settings_file).agent_env == {
        "A": "from-file",
        "B": "from-env",
        "C": "from-env",
    }


def test_a_malformed_mapping_variable_is_reported_even_with_a_file(monkeypatch, tmp_path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("agent_env:\n  A: '1'\n")
    monkeypatch.setenv("BOOTSTRAP_AGENT_ENV", "no-equals-sign")
    with pytest.raises(SettingsError, match="BOOTSTRAP_AGENT_ENV"):
        load_settings({}, settings_file)
