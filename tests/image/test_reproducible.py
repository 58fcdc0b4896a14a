"""Reproducible content: the prod image rebuilt from the same commit, its environment layers
without the layer cache (ENV_REBUILD), holds the same bytes under /opt/prefect."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.docker

HASHES = "cd /opt/prefect && find . -type f -print0 | sort -z | xargs -0 sha256sum"


def file_hashes(containers, image: str) -> dict:
    listed = containers.run_to_end(image, ["sh", "-c", HASHES]).stdout
    return {path: digest for digest, path in (line.split(None, 1) for line in listed.splitlines())}


def test_a_rebuild_without_cache_has_the_same_environment(
    docker_build, containers, prod_image: str
) -> None:
    rebuilt = "prefect-agent-test:rebuilt"
    built = docker_build(
        "--target", "prod", "--build-arg", f"ENV_REBUILD={uuid.uuid4().hex}", tag=rebuilt
    )
    assert built.returncode == 0, built.stderr[-3000:]
    rebuilt_env = _step(built.stderr, "create-env")
    assert rebuilt_env
    assert "CACHED" not in rebuilt_env
    first, second = file_hashes(containers, prod_image), file_hashes(containers, rebuilt)
    assert len(first) > 5000
    assert sorted(first) == sorted(second)
    differing = sorted(path for path in first if first[path] != second[path])
    assert differing == [], f"{len(differing)} files differ, e.g. {differing[:10]}"


def _step(log: str, name: str) -> str:
    """The build log's lines of the step whose command mentions ``name``."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("#") and name in line and "RUN" in line:
            number = line.split()[0]
            return "\n".join(item for item in lines[index:] if item.startswith(number + " "))
    return ""
