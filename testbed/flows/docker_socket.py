"""E2E flow that uses the Docker socket the agent hands its flow runs, as a non-root user."""

import os

from prefect import Flow, task


@task(log_stdout=True)
def engine_version() -> str:
    import docker

    version = docker.from_env().version()["Version"]
    print(f"e2e uid={os.getuid()} engine={version}")
    return version


with Flow("e2e-docker-socket") as flow:
    engine_version()
