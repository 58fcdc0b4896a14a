"""E2E flow whose task raises: the run must end Failed with the message in its state."""

from prefect import Flow, task


@task
def prepare() -> int:
    return 42


@task
def explode(value: int) -> None:
    raise ValueError(f"e2e boom: {value}")


with Flow("e2e-explodes") as flow:
    explode(prepare())
