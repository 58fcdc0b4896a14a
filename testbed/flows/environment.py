"""E2E flow: fail unless the flow-run container has a variable with the expected value (the
value is compared, never printed: it may be a secret)."""

import os

from prefect import Flow, Parameter, task


@task
def check(name: str, expected: str) -> None:
    if os.environ.get(name) != expected:
        raise ValueError(f"{name} is {'unset' if name not in os.environ else 'not as expected'}")


with Flow("e2e-environment") as flow:
    check(Parameter("name"), Parameter("expected"))
