"""A flow for the API double's tests: a Parameter, a mapped task, a reduce step."""

import prefect
from prefect import Flow, Parameter, task
from prefect.storage import Local


@task
def numbers(n):
    return list(range(n))


@task
def double(x):
    prefect.context.get("logger").info("doubling %s", x)
    return 2 * x


@task
def total(xs):
    prefect.context.get("logger").info("total is %s", sum(xs))
    return sum(xs)


with Flow("ok-flow", storage=Local(path=__file__, stored_as_script=True)) as flow:
    n = Parameter("n", default=3)
    total(double.map(numbers(n)))
