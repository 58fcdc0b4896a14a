"""After extra packages are installed: is the environment still consistent, and does the
core still import? Run in a fresh interpreter of the environment; any problem rolls the
install back (the caller's undo journal)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from bootstrap.extras import proc
from bootstrap.extras.core import Core
from bootstrap.extras.plan import installer_message

# What starting the bootstrap, an agent and a flow run imports, by the distribution that
# provides it (only those installed are tried).
SMOKE_IMPORTS: Dict[str, Sequence[str]] = {
    "prefect-agent-bootstrap": ("bootstrap.cli", "bootstrap.agent.hooks"),
    "prefect": (
        "prefect.agent.docker",  # the docker agent; prefect.agent brings the others' code
        "prefect.agent.local",
        "prefect.engine.cloud",  # the flow runner of `prefect execute flow-run`
        "prefect.cli.execute",
    ),
    "lume-base": ("lume.base",),
    "lume-services": ("lume_services",),
}
CHECK_TIMEOUT = 300


def smoke_modules(core: Core) -> List[str]:
    modules: List[str] = []
    for dist, names in SMOKE_IMPORTS.items():
        if dist in core.pins:
            modules.extend(names)
    return modules


def check_environment(
    python: Path,
    tool: str,
    tool_path: str,
    core: Core,
    env: Mapping[str, str],
    import_core: bool = True,
) -> Optional[str]:
    """None if the installed distributions agree with each other and (``import_core``) the
    core imports; else what is wrong, in the checker's or the interpreter's own words."""
    if tool == "uv":
        argv = [tool_path, "pip", "check", "--python", str(python)]
    else:
        argv = [str(python), "-m", "pip", "check"]
    result = proc.run(argv, env, timeout=CHECK_TIMEOUT)
    if result.returncode != 0:
        return f"{tool} pip check: the installed packages disagree:\n" + installer_message(
            result.output
        )
    modules = smoke_modules(core)
    if not modules or not import_core:
        return None
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = proc.run([str(python), "-c", code, *modules], env, timeout=CHECK_TIMEOUT)
    if result.returncode != 0:
        return f"the core no longer imports ({', '.join(modules)}):\n" + _last_error(result.stderr)
    return None


def _last_error(stderr: str, limit: int = 12) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return "\n".join(lines[-limit:]) or "(no output)"
