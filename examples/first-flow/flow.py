"""A first flow for the prefect-agent image (docs/first-flow.md walks through it).

- Storage: the script itself, at the path where the agent mounts this directory into every
  flow-run container (BOOTSTRAP_DOCKER_VOLUMES=.../examples/first-flow:/flows:ro). Prefect's
  default, Local storage of a pickle on the registering machine, would make the run wait for
  an agent on that machine.
- Run config: a container of the agent image (FLOW_IMAGE), taken only by an agent with the
  label "lume".
"""

import os

from prefect import Flow, Parameter, task
from prefect.run_configs import DockerRun
from prefect.storage import Local


@task
def squares(n: int) -> list:
    return [i * i for i in range(1, n + 1)]


@task(log_stdout=True)
def report(name: str, values: list) -> int:
    total = sum(values)
    print(f"Hello {name}: the first {len(values)} squares add up to {total}")
    return total


with Flow(
    "first-flow",
    storage=Local(path="/flows/flow.py", stored_as_script=True, add_default_labels=False),
    run_config=DockerRun(
        image=os.environ.get("FLOW_IMAGE", "prefect-agent:prod"), labels=["lume"]
    ),
) as flow:
    name = Parameter("name", default="LUME")
    n = Parameter("n", default=4)
    report(name, squares(n))
