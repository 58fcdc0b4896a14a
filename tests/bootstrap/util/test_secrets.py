"""bootstrap.util.secrets: what counts as a secret."""

from __future__ import annotations

import pytest

from bootstrap.util.secrets import (
    environment_secrets,
    is_secret_name,
    redact_url,
    url_credentials,
    without_credentials,
)


def test_url_credentials():
    assert url_credentials(
        ["--index-url https://user:s3cr3t@host/simple pkg", "https://tok3n@host/x", "plain"]
    ) == ["s3cr3t", "tok3n"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("MY_PW", True),
        ("DB_PASS", True),
        ("LUME_RESULTS_DSN", True),
        ("dsn", True),
        ("PWD", False),  # the working directory
        ("PASSAGE", False),
        ("LUME_MODEL_DB__HOST", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_credentials_are_removed_from_urls() -> None:
    text = "--index-url https://lume:s3cr3t@pypi.example.org/simple tinypkg"
    assert without_credentials(text) == "--index-url https://pypi.example.org/simple tinypkg"
    assert redact_url("http://user:pw@server:4200/graphql") == "http://server:4200/graphql"
    assert redact_url("http://server:4200") == "http://server:4200"


def test_the_environment_secrets_known_before_settings_load() -> None:
    environ = {
        "PREFECT__CLOUD__API_KEY": "pa-key-123456",
        "PREFECT__CLOUD__API": "https://bot:api-pass@prefect.example.org/graphql",
        "EXTRA_PIP_PACKAGES": "--index-url https://lume:idx-pass@pypi.example.org/simple x",
        "BOOTSTRAP_AGENT_ENV": "MY_PW=flow-pass,DSN=postgres://u:dsn-pass@db/x,PLAIN=visible",
        "SOME_FLAG_TOKEN": "1",  # too short to be a secret: a flag
        "HOME": "/home/prefect",
    }
    found = set(environment_secrets(environ))
    assert {"pa-key-123456", "api-pass", "idx-pass", "flow-pass", "dsn-pass"} <= found
    assert "visible" not in found
    assert "1" not in found
    assert "/home/prefect" not in found
    # a BOOTSTRAP_AGENT_ENV that does not parse still leaks nothing and breaks nothing
    assert environment_secrets({"BOOTSTRAP_AGENT_ENV": '["unterminated'}) == []
