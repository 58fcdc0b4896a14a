"""E2E flow with one task that does nothing: the unit of the flood test and benchmark."""

from prefect import Flow, task


@task
def nothing() -> int:
    return 0


with Flow("e2e-noop") as flow:
    nothing()
