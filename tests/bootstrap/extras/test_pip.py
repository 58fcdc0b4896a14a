"""bootstrap.extras.pip and .pip_request: EXTRA_PIP_PACKAGES parsed, for uv, argvs, dry runs."""

from __future__ import annotations

import pytest

from bootstrap.extras.pip import parse_pip_dry_run, parse_uv_dry_run
from bootstrap.extras.pip_request import parse_pip, pip_argv, pip_env_options, uv_argv
from bootstrap.util.errors import ExtrasError


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


# Dry runs -----------------------------------------------------------------------------------

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
