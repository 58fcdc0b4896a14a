"""bootstrap.extras.plan: parsing, argvs, dry-run output, fingerprints (pure functions)."""

from __future__ import annotations

import json

import pytest

from bootstrap.errors import ExtrasError
from bootstrap.extras.plan import (
    CondaRequest,
    PipRequest,
    UnreadablePlan,
    ca_environment,
    conda_channels,
    conda_cli_argv,
    fingerprint,
    installer_message,
    parse_conda,
    parse_conda_dry_run,
    parse_pip,
    parse_pip_dry_run,
    parse_uv_dry_run,
    pip_argv,
    pip_env_options,
    shorten,
    url_secrets,
    uv_argv,
)

# EXTRA_PIP_PACKAGES -------------------------------------------------------------------------


def test_a_huge_request_is_described_in_a_few_hundred_characters():
    pip = parse_pip(" ".join(f"p{i}" for i in range(20_000)))
    conda = parse_conda(" ".join(f"c{i}" for i in range(20_000)))
    for text in (pip.describe(), conda.describe()):
        assert len(text) < 600
        assert text.endswith("characters)")
    assert pip.describe().startswith("p0 p1 p2 ")
    assert shorten("short") == "short"


def test_pip_words_options_and_requirements():
    request = parse_pip(
        "--extra-index-url https://example.org/simple -f=/wheels 'pandas>=2,<3' "
        "\"numpy; python_version >= '3.8'\" requests[socks]==2.32 --pre -U"
    )
    assert request.options == (
        ("extra-index-url", "https://example.org/simple"),
        ("find-links", "/wheels"),
        ("pre", None),
        ("upgrade", None),
    )
    assert request.requirements == (
        "pandas>=2,<3",
        "numpy; python_version >= '3.8'",
        "requests[socks]==2.32",
    )


def test_pip_short_options_with_attached_values():
    request = parse_pip("-ihttps://mirror/simple -r /reqs.txt")
    assert request.options == (("index-url", "https://mirror/simple"), ("requirement", "/reqs.txt"))
    assert request.requirements == ()


def test_pip_urls_and_paths_are_accepted():
    request = parse_pip("./local-pkg /wheels/x-1.0-py3-none-any.whl git+https://host/repo.git")
    assert len(request.requirements) == 3


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("numpy; touch /tmp/pwned", "'numpy;' is not a valid requirement"),
        ("numpy && touch /tmp/pwned", "'&&' is not a valid requirement"),
        ("$(touch /tmp/pwned)", "not a valid requirement"),
        ("`id`", "not a valid requirement"),
        ("numpy --target /etc", "unsupported option '--target'"),
        ("numpy -X", "unsupported option '-X'"),
        ("--index-url", "needs a value"),
        ("--no-deps=1 numpy", "takes no value"),
        ("'unbalanced", "cannot split"),
        ("--pre", "names no package"),
    ],
)
def test_pip_rejects_what_is_not_a_requirement(value, fragment):
    with pytest.raises(ExtrasError, match="EXTRA_PIP_PACKAGES") as info:
        parse_pip(value)
    assert fragment in str(info.value)


def test_pip_argvs_never_involve_a_shell():
    request = parse_pip("--index-url http://127.0.0.1:1/simple --pre --trusted-host h tinypkg")
    assert uv_argv("/e/bin/uv", "/e/bin/python", request, dry_run=True) == [
        "/e/bin/uv",
        "pip",
        "install",
        "--python",
        "/e/bin/python",
        "--dry-run",
        "--index-url",
        "http://127.0.0.1:1/simple",
        "--prerelease",
        "allow",
        "--allow-insecure-host",
        "h",
        "tinypkg",
    ]
    assert pip_argv("/e/bin/python", request, dry_run=False) == [
        "/e/bin/python",
        "-m",
        "pip",
        "install",
        "--no-input",
        "--progress-bar",
        "off",
        "--index-url",
        "http://127.0.0.1:1/simple",
        "--pre",
        "--trusted-host",
        "h",
        "tinypkg",
    ]


def test_pip_environment_is_translated_for_uv():
    request = parse_pip("tinypkg")
    environ = {
        "PIP_INDEX_URL": "https://mirror/simple",
        "PIP_EXTRA_INDEX_URL": "https://a/simple https://b/simple",
        "PIP_FIND_LINKS": "/wheels",
        "PIP_TRUSTED_HOST": "mirror",
        "PIP_NO_INDEX": "false",
        "PIP_PRE": "1",
    }
    assert pip_env_options(request, environ).options == (
        ("index-url", "https://mirror/simple"),
        ("extra-index-url", "https://a/simple"),
        ("extra-index-url", "https://b/simple"),
        ("find-links", "/wheels"),
        ("trusted-host", "mirror"),
        ("pre", None),
    )


def test_request_options_and_uv_variables_win_over_pip_variables():
    request = parse_pip("--index-url https://chosen/simple tinypkg")
    environ = {
        "PIP_INDEX_URL": "https://ignored/simple",
        "PIP_EXTRA_INDEX_URL": "https://ignored-too/simple",
        "UV_EXTRA_INDEX_URL": "https://uv-own/simple",
    }
    assert pip_env_options(request, environ).options == (("index-url", "https://chosen/simple"),)


# EXTRA_CONDA_PACKAGES -------------------------------------------------------------------------


def test_conda_channels_and_specs():
    request = parse_conda(
        "-c conda-forge --channel=http://127.0.0.1:9/channel -cbioconda 'numpy>=1.26,<2' "
        "scipy=1.11 'pandas 2.*' conda-forge::xarray"
    )
    assert request.channels == ("conda-forge", "http://127.0.0.1:9/channel", "bioconda")
    assert request.specs == ("numpy>=1.26,<2", "scipy=1.11", "pandas 2.*", "conda-forge::xarray")
    assert not request.override_channels


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("numpy; touch /tmp/pwned", "'numpy;' is not a conda package spec"),
        ("numpy; rm -rf /", "unsupported option '-rf'"),
        ("numpy --prefix /", "unsupported option '--prefix'"),
        ("-c", "needs a value"),
        ("-c conda-forge", "names no package"),
        ("'a|b'", "not a conda package spec"),
    ],
)
def test_conda_rejects_what_is_not_a_spec(value, fragment):
    with pytest.raises(ExtrasError, match="EXTRA_CONDA_PACKAGES") as info:
        parse_conda(value)
    assert fragment in str(info.value)


def test_conda_channels_for_rattler():
    assert conda_channels(parse_conda("tinyconda"), {}) == ["conda-forge"]
    assert conda_channels(parse_conda("tinyconda"), {"CONDA_CHANNELS": "a, b"}) == ["a", "b"]
    assert conda_channels(parse_conda("-c x chan::pkg"), {"CONDA_CHANNELS": "a"}) == [
        "x",
        "chan",
        "a",
    ]
    assert conda_channels(parse_conda("-c x --override-channels pkg"), {"CONDA_CHANNELS": "a"}) == [
        "x"
    ]


def test_conda_cli_argv():
    request = parse_conda("-c conda-forge --override-channels numpy")
    assert conda_cli_argv("mamba", "/opt/prefect", request, dry_run=True) == [
        "mamba",
        "install",
        "--yes",
        "--prefix",
        "/opt/prefect",
        "--dry-run",
        "--json",
        "--channel",
        "conda-forge",
        "--override-channels",
        "numpy",
    ]
    assert conda_cli_argv("conda", "/p", request, dry_run=False)[5] == "--quiet"


# Installer output ------------------------------------------------------------------------------

UV_DRY_RUN = """Using Python 3.11.2 environment at: /opt/prefect
Resolved 3 packages in 12ms
Would download 2 packages
Would uninstall 1 package
Would install 2 packages
 - requests==2.31.0
 + requests==2.32.3
 + tinypkg==0.1.0
 ~ local @ file:///wheels/local-1.0-py3-none-any.whl
"""


def test_uv_dry_run():
    changes = parse_uv_dry_run(UV_DRY_RUN)
    assert changes.install == [
        ("requests", "2.32.3"),
        ("tinypkg", "0.1.0"),
        ("local", "file:///wheels/local-1.0-py3-none-any.whl"),
    ]
    assert changes.remove == [
        ("requests", "2.31.0"),
        ("local", "file:///wheels/local-1.0-py3-none-any.whl"),
    ]
    assert parse_uv_dry_run("Checked 1 package in 1ms\nWould make no changes\n").empty


def test_pip_dry_run():
    changes = parse_pip_dry_run("Collecting x\nWould install tiny-pkg-0.1.0 tinydep-2.0\n")
    assert changes.install == [("tiny-pkg", "0.1.0"), ("tinydep", "2.0")]


def test_conda_dry_run_plan_and_errors():
    plan = {
        "actions": {
            "LINK": [{"name": "numpy", "version": "1.26.4", "build_string": "py311h0"}],
            "UNLINK": [{"name": "numpy", "version": "1.26.0", "build_string": "py311h1"}],
        },
        "dry_run": True,
        "success": True,
    }
    changes, unlinked = parse_conda_dry_run("noise\n" + json.dumps(plan))
    assert changes.install == [("numpy", "1.26.4")]
    assert unlinked == ["numpy-1.26.0-py311h1"]
    nothing, _ = parse_conda_dry_run(json.dumps({"success": True, "message": "All requested"}))
    assert nothing.empty
    micromamba = {"actions": {"LINK": ["conda-forge::tzdata-2024a-h0"]}, "success": True}
    assert parse_conda_dry_run(json.dumps(micromamba))[0].install == [("tzdata", "2024a")]
    failure = {"exception_name": "PackagesNotFoundError", "error": "PackagesNotFoundError: nope"}
    with pytest.raises(ExtrasError, match="PackagesNotFoundError: nope"):
        parse_conda_dry_run(json.dumps(failure))
    with pytest.raises(UnreadablePlan, match="cannot read"):
        parse_conda_dry_run("{not json")
    with pytest.raises(UnreadablePlan, match="printed no plan"):
        parse_conda_dry_run("Traceback (most recent call last): ...")


def test_installer_message_starts_at_the_error():
    output = "Using Python 3.11\nResolved 1 package\nerror: No solution found\n  cause: x\n"
    assert installer_message(output) == "error: No solution found\n  cause: x"
    assert installer_message("a\nb\n") == "a\nb"


# Fingerprint, secrets, TLS -------------------------------------------------------------------


def test_fingerprint_is_stable_and_sensitive():
    pip = PipRequest((("index-url", "https://x/simple"),), ("tinypkg",))
    conda = CondaRequest(("c",), ("tinyconda",))
    base = fingerprint(conda, "rattler:0.28", pip, "uv:1", {}, "py")
    assert base == fingerprint(conda, "rattler:0.28", pip, "uv:1", {"HOME": "/x"}, "py")
    variants = [
        fingerprint(conda, "rattler:0.29", pip, "uv:1", {}, "py"),
        fingerprint(conda, "rattler:0.28", pip, "uv:2", {}, "py"),
        fingerprint(None, "", pip, "uv:1", {}, "py"),
        fingerprint(conda, "rattler:0.28", PipRequest((), ("tinypkg",)), "uv:1", {}, "py"),
        fingerprint(conda, "rattler:0.28", pip, "uv:1", {"PIP_INDEX_URL": "https://y"}, "py"),
        fingerprint(conda, "rattler:0.28", pip, "uv:1", {}, "py2"),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_url_secrets():
    assert url_secrets(
        ["--index-url https://user:s3cr3t@host/simple pkg", "https://tok3n@host/x", "plain"]
    ) == ["s3cr3t", "tok3n"]


def test_ca_environment_covers_every_installer():
    env = ca_environment("/tmp/bundle.pem")
    assert set(env) >= {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CONDA_SSL_VERIFY"}
    assert set(env.values()) == {"/tmp/bundle.pem"}
