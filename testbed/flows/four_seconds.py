"""E2E flow that takes four seconds: the unit of the capacity tests."""

import time

from prefect import Flow, task


@task
def work() -> int:
    time.sleep(4)
    return 4


with Flow("e2e-four-seconds") as flow:
    work()
