"""Shared fixtures: everything that starts real things lives in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.docker", "tests.fixtures.prefect_api"]
