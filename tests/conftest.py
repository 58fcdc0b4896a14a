"""Shared fixtures: everything that starts real things lives in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.docker",
    "tests.fixtures.docker_events",
    "tests.fixtures.prefect_api",
    "tests.fixtures.agent_stand",
    "tests.fixtures.compose",
    "tests.fixtures.registry",
]
