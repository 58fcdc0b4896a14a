"""E2E flow: fail if the agent's registry credentials reached the flow-run container (a
variable naming them, or the agent's mounted config.json)."""

import os

from prefect import Flow, task


@task
def check() -> None:
    leaked = [name for name in os.environ if "DOCKER_CONFIG" in name or name == "DOCKER_AUTH"]
    if leaked:
        raise ValueError(f"registry credentials reached the flow run: {leaked}")
    if os.path.exists("/run/secrets/docker-config.json"):
        raise ValueError("the agent's config.json is mounted in the flow run")


with Flow("e2e-no-registry-credentials") as flow:
    check()
