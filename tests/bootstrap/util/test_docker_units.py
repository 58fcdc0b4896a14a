"""bootstrap.util.docker_units: the units docker run reads."""

from __future__ import annotations

import pytest

from bootstrap.util.docker_units import host_config_defaults, parse_bytes, parse_cpus, run_cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512m", 512 * 2**20), ("2g", 2 * 2**30), ("2GB", 2 * 2**30), ("1.5g", 3 * 2**29),
     ("1024", 1024), (4096, 4096), ("64k", 65536)],
)  # fmt: skip
def test_sizes(text, expected) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "2x", "-1g", "1 g b"])
def test_bad_sizes_say_what_docker_reads(text) -> None:
    with pytest.raises(ValueError, match="not a size Docker reads"):
        parse_bytes(text)


def test_cpus() -> None:
    assert parse_cpus("1.5") == 1.5
    with pytest.raises(ValueError, match="must be more than 0"):
        parse_cpus("0")
    with pytest.raises(ValueError, match="not a number of CPUs"):
        parse_cpus("two")
    assert run_cpus({"nano_cpus": 2_500_000_000}) == 2.5
    assert run_cpus({"cpu_quota": 150000, "cpu_period": 100000}) == 1.5
    assert run_cpus({}) is None


def test_defaults_as_the_sdk_takes_them() -> None:
    assert host_config_defaults("2g", 1.5, 512, "256m") == {
        "mem_limit": 2 * 2**30,
        "nano_cpus": 1_500_000_000,
        "pids_limit": 512,
        "shm_size": 256 * 2**20,
    }
    assert host_config_defaults(None, None, None, None) == {}
