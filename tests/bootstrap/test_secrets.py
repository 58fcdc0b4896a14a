"""bootstrap.secrets: what counts as a secret."""

from __future__ import annotations

from bootstrap.secrets import url_credentials


def test_url_credentials():
    assert url_credentials(
        ["--index-url https://user:s3cr3t@host/simple pkg", "https://tok3n@host/x", "plain"]
    ) == ["s3cr3t", "tok3n"]
