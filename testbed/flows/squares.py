"""E2E flow: a parameter, several tasks and one mapped task (runs in a flow-run container)."""

from prefect import Flow, Parameter, task


@task
def numbers(n: int) -> list:
    return list(range(n))


@task
def square(x: int) -> int:
    return x * x


@task(log_stdout=True)
def total(values: list) -> int:
    result = sum(values)
    print(f"e2e total={result}")
    return result


with Flow("e2e-squares") as flow:
    n = Parameter("n", default=3)
    total(square.map(numbers(n)))
