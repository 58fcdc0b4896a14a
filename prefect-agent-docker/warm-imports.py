"""Import what starting the bootstrap, an agent or a flow run imports, so that exactly those
modules get bytecode in the image (the rest compiles on first use, in the container).

Run in the builder stage; an import failure fails the build, so this doubles as a smoke test
of the runtime environment.
"""

import importlib
import sys
from pathlib import Path

HOT_PATHS = [
    # prefect-agent-bootstrap (its own modules are compiled when its wheel is installed)
    "click", "pydantic", "requests", "tenacity", "yaml", "slugify", "docker",
    # the agent launcher (bootstrap.agent): its health server, metrics, JSON logs
    "tornado.web", "prometheus_client", "pythonjsonlogger.json",
    # prefect agents: docker, local, kubernetes
    "prefect", "prefect.cli", "prefect.agent.docker", "prefect.agent.local",
    "prefect.agent.kubernetes", "kubernetes.client", "kubernetes.config",
    # a flow run: prefect execute flow-run, its heartbeat, the usual storage and executors
    "prefect.cli.execute", "prefect.cli.heartbeat", "prefect.engine.cloud",
    "prefect.storage", "prefect.run_configs", "prefect.executors",
    # LUME flows
    "lume", "lume.base",
]  # fmt: skip


class Absent:
    """Last on the import path: every top-level module asked for that nothing provides (the
    core's optional imports: requests tries simplejson, urllib3 brotli). A package that
    later provides one changes what the core does: the extras check then imports the core
    (bootstrap.extras.touched)."""

    def __init__(self) -> None:
        self.names = set()

    def find_spec(self, name, path=None, target=None):
        if "." not in name:
            self.names.add(name)
        return None


absent = Absent()
sys.meta_path.append(absent)
for name in HOT_PATHS:
    importlib.import_module(name)
sys.meta_path.remove(absent)
state = Path(sys.prefix, ".prefect-agent")
state.mkdir(exist_ok=True)
(state / "optional-imports.txt").write_text("".join(f"{name}\n" for name in sorted(absent.names)))
print(
    f"warm-imports: {len(sys.modules)} modules compiled; {len(absent.names)} optional imports "
    "absent",
    file=sys.stderr,
)
