"""The package's shape, as the layout promises it (docs/README.md): no import cycle, modules
one can read in a sitting, and functions that fit on a screen."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[2] / "bootstrap"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 62


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_at_load(path: Path, known: Set[str]) -> Set[str]:
    """The bootstrap modules ``path`` imports when it is loaded (module level, outside
    ``if TYPE_CHECKING``): ``from a import b`` names a.b when that is a module."""
    found: Set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return {name for name in found if name in known}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_bootstrap_module_imports_back_into_a_cycle() -> None:
    known = modules()
    graph = {name: imports_at_load(path, set(known)) - {name} for name, path in known.items()}
    assert graph["bootstrap.startup"] >= {"bootstrap.startup.step1_wait"}  # the graph is read
    assert find_cycle(graph) == []


def test_the_settings_do_not_depend_on_the_agent_process() -> None:
    known = modules()
    for name, path in known.items():
        if name.startswith("bootstrap.settings"):
            imported = imports_at_load(path, set(known))
            assert not {i for i in imported if i.startswith("bootstrap.agent")}, name


def test_modules_and_functions_are_small_enough_to_read() -> None:
    long_modules, long_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append((name, text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append((f"{name}.{node.name}", length))
    assert long_modules == []
    assert long_functions == []


def test_the_start_up_steps_are_numbered_in_the_order_they_run() -> None:
    steps = sorted(path.stem for path in (PACKAGE / "startup").glob("step*.py"))
    assert steps == [
        "step1_wait",
        "step2_tenant",
        "step3_projects",
        "step4_preflight",
        "step5_launch",
    ]
    sequence = (PACKAGE / "startup" / "__init__.py").read_text()
    body = sequence[sequence.index("def run(") :]
    calls = ["wait_for_server(", "ensure_tenant(", "ensure_projects(", "launch_agent("]
    positions = [body.index(call) for call in calls]
    assert positions == sorted(positions)
