"""A flow with a required parameter."""

from prefect import Flow, Parameter, task
from prefect.storage import Local


@task
def echo(x):
    return x


with Flow("required-param-flow", storage=Local(path=__file__, stored_as_script=True)) as flow:
    echo(Parameter("who", required=True))
