"""E2E flow: import a module that only the agent's EXTRA_* packages provide."""

import importlib

from prefect import Flow, Parameter, task


@task(log_stdout=True)
def load(name: str) -> str:
    module = importlib.import_module(name)
    version = getattr(module, "VERSION", "?")
    print(f"imported {name} {version}")
    return version


with Flow("e2e-imports") as flow:
    load(Parameter("module"))
