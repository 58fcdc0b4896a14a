"""make test's spread over pytest-xdist workers (tests/conftest.py) does what it says: the
tests of a module sharing a module-scoped fixture run on one worker, so the fixture is set
up once, and an explicit group keeps its tests on one worker. (pytest 9 with pytest-xdist
3.8 silently groups nothing: this fails then.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testbed.docker import ROOT

SHARED = """
import os, pytest

@pytest.fixture(scope="module")
def shared():
    with open(os.environ["SETUPS"], "a") as log:
        log.write(f"{__name__} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("i", range(12))
def test_uses_it(shared, i):
    pass
"""
GROUPED = """
import os, pytest

@pytest.mark.xdist_group("port-8080")
@pytest.mark.parametrize("i", range(12))
def test_in_a_group(i):
    with open(os.environ["SETUPS"], "a") as log:
        log.write(f"grouped {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_module_fixtures_and_groups_stay_on_one_worker(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"
    )
    (suite / "test_shared.py").write_text(SHARED)
    (suite / "test_grouped.py").write_text(GROUPED)
    setups = tmp_path / "setups"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "3", "--dist", "loadgroup",
         "-p", "no:cacheprovider", str(suite)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SETUPS": str(setups)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = setups.read_text().splitlines()
    shared = [line for line in lines if line.startswith("test_shared")]
    assert len(shared) == 1, lines  # one set-up for the module's twelve tests
    grouped = {line.split()[1] for line in lines if line.startswith("grouped")}
    assert len(grouped) == 1, lines  # the group's twelve tests on one worker
