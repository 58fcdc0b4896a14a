"""Import what starting the bootstrap, an agent or a flow run imports, so that exactly those
modules get bytecode in the image (the rest compiles on first use, in the container).

Run in the builder stage; an import failure fails the build, so this doubles as a smoke test
of the runtime environment.
"""

import importlib
import sys

HOT_PATHS = [
    # prefect-agent-bootstrap (its own modules are compiled when its wheel is installed)
    "click", "pydantic", "requests", "tenacity", "yaml", "slugify", "docker",
    # the agent launcher (bootstrap.agent): its health server, metrics, JSON logs
    "tornado.web", "prometheus_client", "pythonjsonlogger.json",
    # prefect agents: docker, local, kubernetes
    "prefect", "prefect.cli", "prefect.agent.docker", "prefect.agent.local",
    "prefect.agent.kubernetes", "kubernetes.client", "kubernetes.config",
    # a flow run: prefect execute flow-run, prefect's heartbeat (a run that sets its mode), the
    # usual storage and executors
    "prefect.cli.execute", "prefect.cli.heartbeat", "prefect.engine.cloud",
    "prefect.storage", "prefect.run_configs", "prefect.executors",
    # LUME flows
    "lume", "lume.base",
]  # fmt: skip


for name in HOT_PATHS:
    importlib.import_module(name)
print(f"warm-imports: {len(sys.modules)} modules compiled", file=sys.stderr)
