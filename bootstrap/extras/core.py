"""The image's core: the distributions the bootstrap, prefect's agent and flow runner and
LUME's packages need, at the versions the image has. Extra packages may add to the
environment; they may not change the core (``EXTRA_ALLOW_CORE_CHANGES=1`` aside).

Derived from what is installed (each root's requirements, followed through the installed
metadata with the interpreter's markers), not from a list kept by hand: whatever the image
was built with is what is protected. Pure but for :func:`core_of`'s input.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from bootstrap.extras.environment import TargetEnv, canonical_name
from bootstrap.extras.plan import Changes
from bootstrap.util.errors import ExtrasError

# What the image is for. Missing ones (lume-services without LUME_SERVICES_VERSION) are skipped.
ROOTS = (
    "prefect-agent-bootstrap",
    "prefect",
    "lume-base",
    "lume-services",
    "lume-model",
    "uv",  # the installers themselves
    "py-rattler",
)
ALLOW_CORE_CHANGES_VAR = "EXTRA_ALLOW_CORE_CHANGES"


@dataclass(frozen=True)
class CoreChange:
    """A change an install would make to the core."""

    name: str
    installed: str
    wanted: Optional[str]  # None: removed
    needed_by: Tuple[str, ...]

    def describe(self) -> str:
        change = f"{self.wanted}" if self.wanted else "nothing (removed)"
        why = f" ({'; '.join(self.needed_by)})" if self.needed_by else ""
        return f"{self.name} {self.installed} would become {change}{why}"


class CoreChangeError(ExtrasError):
    """An extra package would change the core: refused, before anything changed."""

    def __init__(self, variable: str, request: str, changes: List[CoreChange], why: str = ""):
        lines = [
            f"{variable}: {request} cannot be installed without changing this image's core:",
            *(f"  {change.describe()}" for change in changes),
        ]
        if why:
            lines += ["The installer's explanation:", why]
        lines.append(
            "The core is what the bootstrap, prefect's agent and flow runner and LUME's "
            "packages need ('prefect-agent-bootstrap extras protected' lists it). Ask for a "
            f"version that fits it; {ALLOW_CORE_CHANGES_VAR}=1 installs anyway, at the risk "
            "of an agent that no longer starts."
        )
        super().__init__("\n".join(lines))
        self.changes = changes


@dataclass
class Core:
    pins: Dict[str, str] = field(default_factory=dict)  # canonical name -> version
    names: Dict[str, str] = field(default_factory=dict)  # canonical name -> display name
    needed_by: Dict[str, List[str]] = field(default_factory=dict)  # -> "a 1.0 needs b<2"
    roots: List[str] = field(default_factory=list)

    def constraints(self) -> str:
        """A constraints file holding the core at its versions (pip and uv read it)."""
        return "".join(f"{self.names[key]}=={self.pins[key]}\n" for key in sorted(self.pins))

    def changes_to(self, changes: Changes) -> List[CoreChange]:
        """What ``changes`` would do to the core: a version replaced, a package removed."""
        installs = {canonical_name(name): version for name, version in changes.install}
        removes = {canonical_name(name) for name, _ in changes.remove}
        found: List[CoreChange] = []
        for key in sorted(set(installs) | removes):
            if key not in self.pins:
                continue
            wanted = installs.get(key)
            if wanted == self.pins[key]:
                continue  # reinstalled as it is
            found.append(
                CoreChange(
                    self.names[key], self.pins[key], wanted, tuple(self.needed_by.get(key, ()))
                )
            )
        return found

    def mentioned_in(self, text: str) -> List[CoreChange]:
        """Core packages a solver's explanation names, as changes it could not make."""
        lowered = text.lower()
        return [
            CoreChange(
                self.names[key],
                self.pins[key],
                "another version",
                tuple(self.needed_by.get(key, ())),
            )
            for key in sorted(self.pins)
            if _mentions(lowered, key)
        ]

    def describe(self) -> List[str]:
        """One line per protected distribution: name, version, who needs it."""
        lines = []
        for key in sorted(self.pins):
            needed = self.needed_by.get(key)
            why = f"  <- {'; '.join(needed)}" if needed else "  (root)"
            lines.append(f"{self.names[key]}=={self.pins[key]}{why}")
        return lines


def _mentions(text: str, name: str) -> bool:
    import re

    spelled = re.escape(name).replace("\\-", "[-_.]")
    return re.search(rf"(?<![\w.-]){spelled}(?![\w])", text) is not None


def _requirements(target: TargetEnv, key: str) -> Iterable[Tuple[str, str]]:
    """(canonical name, specifier) of the requirements of an installed distribution that
    apply here (markers evaluated with the target interpreter's values, no extras)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for text in target.requires.get(key, []):
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None:
            environment = {**target.markers, "extra": ""}
            if not requirement.marker.evaluate(environment):
                continue
        yield canonical_name(requirement.name), str(requirement.specifier)


def core_of(target: TargetEnv, roots: Iterable[str] = ROOTS) -> Core:
    """The roots installed in ``target`` and everything they need, transitively."""
    core = Core()
    queue = deque()
    for root in roots:
        key = canonical_name(root)
        if key in target.distributions:
            core.roots.append(target.names.get(key, root))
            queue.append(key)
    while queue:
        key = queue.popleft()
        if key in core.pins or key not in target.distributions:
            continue
        version = target.distributions[key][0]
        core.pins[key] = version
        core.names[key] = target.names.get(key, key)
        for dependency, specifier in _requirements(target, key):
            if dependency not in target.distributions:
                continue  # an optional dependency that is not installed
            need = f"{core.names[key]} {version} needs {target.names.get(dependency, dependency)}"
            needs = core.needed_by.setdefault(dependency, [])
            if need + (specifier or " (any)") not in needs:
                needs.append(need + (specifier or " (any)"))
            queue.append(dependency)
    return core


def allow_core_changes(environ: Mapping[str, str]) -> bool:
    return (environ.get(ALLOW_CORE_CHANGES_VAR) or "").strip().lower() in ("1", "true", "yes")
