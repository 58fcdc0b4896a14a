"""bootstrap.extras.tls: EXTRA_CA_CERT for every installer and for the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.extras.tls import (
    COMMAND_CA_VARIABLES,
    ca_environment,
    command_environment,
    system_bundle,
)
from bootstrap.util.errors import ExtrasError


def test_ca_environment_covers_every_installer():
    env = ca_environment("/tmp/bundle.pem")
    assert set(env) >= {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CONDA_SSL_VERIFY"}
    assert set(env.values()) == {"/tmp/bundle.pem"}


PEM = "-----BEGIN CERTIFICATE-----\nMIIBextra\n-----END CERTIFICATE-----\n"


def test_the_command_trusts_the_extra_ca_besides_the_system_ones(tmp_path):
    ca = tmp_path / "proxy-ca.pem"
    ca.write_text(PEM)
    env = command_environment(str(ca), tmp_path, {})
    assert set(env) == {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
    bundle = Path(env["SSL_CERT_FILE"]).read_text()
    assert bundle.endswith(PEM)
    assert bundle.startswith(system_bundle().rstrip("\n")[:200])


def test_the_operators_own_trust_settings_are_kept(tmp_path):
    env = command_environment(PEM, tmp_path, {"REQUESTS_CA_BUNDLE": "/etc/mine.pem"})
    assert set(env) == {"SSL_CERT_FILE"}
    assert command_environment(PEM, tmp_path, dict.fromkeys(COMMAND_CA_VARIABLES, "x")) == {}
    assert command_environment("", tmp_path, {}) == {}


def test_a_file_without_a_certificate_is_refused(tmp_path):
    (tmp_path / "empty.pem").write_text("not a certificate")
    with pytest.raises(ExtrasError, match="holds no PEM certificate"):
        command_environment(str(tmp_path / "empty.pem"), tmp_path, {})
