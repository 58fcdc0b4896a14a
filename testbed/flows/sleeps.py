"""E2E flow that runs for a long time (600 s unless the run says otherwise): its container
is killed under it, or it outlasts the server's sped-up heartbeat window."""

import time

from prefect import Flow, Parameter, task


@task(log_stdout=True)
def sleep_long(seconds: float) -> None:
    print("e2e: sleeping")
    time.sleep(seconds)


with Flow("e2e-sleeps") as flow:
    sleep_long(Parameter("seconds", default=600))
