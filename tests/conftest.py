"""Shared fixtures (everything that starts real things lives in tests/fixtures/), and how
the suite is spread over pytest-xdist workers (``make test``: ``-n 3 --dist loadgroup``).

- A module whose tests share a module-scoped fixture (a package server, a batch of
  containers) runs on one worker, so the fixture is set up once: its tests form one
  ``xdist_group`` named after the module (found from the fixtures, not listed by hand).
- Tests that must not run beside each other say so with their own ``xdist_group`` mark
  (``port-8080``: an agent on the image's default health port; ``load``: dozens of
  containers at once).
- The slowest tests are collected first, so that no worker starts one at the end.
"""

from __future__ import annotations

from typing import Dict, List

import pytest

pytest_plugins = [
    "tests.fixtures.docker",
    "tests.fixtures.docker_events",
    "tests.fixtures.prefect_api",
    "tests.fixtures.agent_stand",
    "tests.fixtures.compose",
    "tests.fixtures.registry",
    "tests.fixtures.process_state",
]

# Modules holding the longest single tests (a minute or more each), started first.
SLOWEST = (
    "tests/reliability/test_load.py",
    "tests/reliability/test_flood.py",
    "tests/reliability/test_faults.py",
    "tests/image/test_reproducible.py",
    "tests/reliability/test_watchdog.py",
    "tests/bootstrap/agent/test_process.py",
    "tests/e2e/test_capacity.py",
    "tests/e2e/test_image_pull.py",
)


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definition.scope == "module"
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (its own hook)
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    rank: Dict[str, int] = {}  # per module, so that a module's tests stay together
    for item in items:
        module = _module(item)
        if item.get_closest_marker("xdist_group") is None and _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(module))
        if module in SLOWEST:
            mine = SLOWEST.index(module)
        else:  # then the tests of real containers, then the quick ones
            mine = len(SLOWEST) + (0 if item.get_closest_marker("docker") else 1)
        rank[module] = min(rank.get(module, mine), mine)
    items.sort(key=lambda item: rank[_module(item)])  # stable within a rank
