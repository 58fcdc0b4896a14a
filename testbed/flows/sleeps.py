"""E2E flow that runs for a long time: its container is killed under it."""

import time

from prefect import Flow, task


@task(log_stdout=True)
def sleep_long() -> None:
    print("e2e: sleeping")
    time.sleep(600)


with Flow("e2e-sleeps") as flow:
    sleep_long()
