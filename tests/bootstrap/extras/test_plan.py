"""bootstrap.extras.plan: what the installers share (messages, long values)."""

from __future__ import annotations

from bootstrap.extras.conda_request import parse_conda
from bootstrap.extras.pip_request import parse_pip
from bootstrap.extras.plan import installer_message, shorten


def test_a_huge_request_is_described_in_a_few_hundred_characters():
    pip = parse_pip(" ".join(f"p{i}" for i in range(20_000)))
    conda = parse_conda(" ".join(f"c{i}" for i in range(20_000)))
    for text in (pip.describe(), conda.describe()):
        assert len(text) < 600
        assert text.endswith("characters)")
    assert pip.describe().startswith("p0 p1 p2 ")
    assert shorten("short") == "short"


def test_installer_message_starts_at_the_error():
    output = "Using Python 3.11\nResolved 1 package\nerror: No solution found\n  cause: x\n"
    assert installer_message(output) == "error: No solution found\n  cause: x"
    assert installer_message("a\nb\n") == "a\nb"


def test_an_untrusted_certificate_points_to_extra_ca_cert():
    uv = (
        "error: Request failed after 3 retries\n  Caused by: error sending request for url "
        "(https://pypi.example.org/simple/tinypkg/)\n  Caused by: invalid peer certificate: "
        "UnknownIssuer"
    )
    assert "set EXTRA_CA_CERT to its CA certificate" in installer_message(uv)
    pip = "ERROR: ... [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get"
    assert "EXTRA_CA_CERT" in installer_message(pip)
    assert "EXTRA_CA_CERT" not in installer_message("error: No solution found")
