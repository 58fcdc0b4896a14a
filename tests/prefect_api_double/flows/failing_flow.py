"""A flow for the API double's tests whose second task raises."""

from prefect import Flow, task
from prefect.storage import Local


@task
def prepare():
    return 41


@task
def explode(x):
    raise ValueError(f"boom {x + 1}")


with Flow("failing-flow", storage=Local(path=__file__, stored_as_script=True)) as flow:
    explode(prepare())
