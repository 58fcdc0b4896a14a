"""bootstrap.extras.fingerprint: what decides whether an install can be skipped."""

from __future__ import annotations

from bootstrap.extras.conda_request import CondaRequest
from bootstrap.extras.fingerprint import digest
from bootstrap.extras.pip_request import PipRequest


def test_fingerprint_is_stable_and_sensitive():
    pip = PipRequest((("index-url", "https://x/simple"),), ("tinypkg",))
    conda = CondaRequest(("c",), ("tinyconda",))
    base = digest(conda, "rattler:0.28", pip, "uv:1", {}, "py")
    assert base == digest(conda, "rattler:0.28", pip, "uv:1", {"HOME": "/x"}, "py")
    variants = [
        digest(conda, "rattler:0.29", pip, "uv:1", {}, "py"),
        digest(conda, "rattler:0.28", pip, "uv:2", {}, "py"),
        digest(None, "", pip, "uv:1", {}, "py"),
        digest(conda, "rattler:0.28", PipRequest((), ("tinypkg",)), "uv:1", {}, "py"),
        digest(conda, "rattler:0.28", pip, "uv:1", {"PIP_INDEX_URL": "https://y"}, "py"),
        digest(conda, "rattler:0.28", pip, "uv:1", {}, "py2"),
    ]
    assert len({base, *variants}) == len(variants) + 1
