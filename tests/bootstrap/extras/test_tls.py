"""bootstrap.extras.tls: EXTRA_CA_CERT for every installer."""

from __future__ import annotations

from bootstrap.extras.tls import ca_environment


def test_ca_environment_covers_every_installer():
    env = ca_environment("/tmp/bundle.pem")
    assert set(env) >= {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CONDA_SSL_VERIFY"}
    assert set(env.values()) == {"/tmp/bundle.pem"}
