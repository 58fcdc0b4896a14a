"""The tests' own clean-up (testbed.docker.Containers, the ``containers`` fixture): a
container that cannot start, and the flow-run containers an agent leaves behind, are
removed; a developer's repeated ``make test`` would otherwise pile them up on the engine."""

from __future__ import annotations

import contextlib
import uuid

import docker
import pytest

from testbed.docker import Containers
from testbed.flow_runs import FLOW_RUN_LABEL, remove_flow_run_containers

pytestmark = pytest.mark.docker


def test_a_container_that_cannot_start_is_not_left_behind(docker_client, prod_image) -> None:
    containers = Containers(docker_client)
    name = f"pa-test-{uuid.uuid4().hex[:10]}"
    with pytest.raises(docker.errors.APIError, match="no-such-command"):
        containers.run(prod_image, name=name, entrypoint=["/no-such-command"])
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert containers.started == []


def test_only_the_given_runs_flow_run_containers_are_removed(docker_client, prod_image) -> None:
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    made = [
        docker_client.containers.create(
            prod_image, ["true"], entrypoint=[], labels={FLOW_RUN_LABEL: run_id}
        )
        for run_id in (ours, theirs)
    ]
    try:
        assert remove_flow_run_containers(docker_client, [ours]) == 1
        left = docker_client.containers.list(  # other workers' runs come and go meanwhile
            all=True, ignore_removed=True, filters={"label": FLOW_RUN_LABEL}
        )
        assert made[0].id not in [each.id for each in left]
        assert made[1].id in [each.id for each in left]  # another test's, or a user's
    finally:
        for container in made:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
