"""bootstrap.extras.conda and .rattler: EXTRA_CONDA_PACKAGES parsed, channels, argvs, dry runs."""

from __future__ import annotations

import json

import pytest

from bootstrap.extras.conda import (
    UnreadablePlan,
    conda_cli_argv,
    parse_conda_dry_run,
)
from bootstrap.extras.conda_request import parse_conda
from bootstrap.extras.rattler import conda_channels
from bootstrap.util.errors import ExtrasError


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
