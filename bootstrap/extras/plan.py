"""What the installers share: how a value is split into options and words, what a plan is,
and the :class:`Installer` protocol each installer (:mod:`~bootstrap.extras.pip`,
:mod:`~bootstrap.extras.conda`, :mod:`~bootstrap.extras.rattler`) follows.

Values are split with shell-word rules (:func:`shlex.split`) and only ever passed as argv
items, never to a shell: ``numpy; touch /tmp/pwned`` is three words, the first of which is
an invalid requirement, so the whole value is rejected before any installer runs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, List, Mapping, Optional, Protocol, Sequence, Tuple, TypeVar

from bootstrap.extras import proc
from bootstrap.extras.environment import TargetEnv
from bootstrap.util.errors import ExtrasError

# An accepted option: alias -> (canonical long name, takes a value).
OptionTable = Mapping[str, Tuple[str, bool]]
Option = Tuple[str, Optional[str]]


def shorten(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters for log lines and messages: a value can be as
    long as the kernel allows a variable (128 KiB)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def split_words(variable: str, value: str) -> List[str]:
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError as exc:  # unbalanced quotes
        raise ExtrasError(f"{variable}: cannot split {value!r} into words: {exc}") from None


def take_options(
    variable: str, words: Sequence[str], table: OptionTable
) -> Tuple[List[Option], List[str]]:
    """Split words into accepted options (canonical name, value) and the other words.
    Anything that looks like an option but is not in ``table`` is refused: a typo, or an
    attempt to smuggle an option in (``--target /etc``)."""
    options: List[Option] = []
    rest: List[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or word == "-":
            rest.append(word)
            continue
        flag, eq, inline = word.partition("=")
        if flag not in table:
            if flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
                short, attached = flag[:2], word[2:]  # -ihttps://... / -cconda-forge
                if short in table and table[short][1]:
                    options.append((table[short][0], attached))
                    continue
            known = ", ".join(sorted({alias for alias in table if alias.startswith("--")}))
            raise ExtrasError(
                f"{variable}: unsupported option {word!r} (accepted: {known}); values are "
                "split into words like a shell would, but never run by one"
            )
        name, takes_value = table[flag]
        if not takes_value:
            if eq:
                raise ExtrasError(f"{variable}: option {flag} takes no value ({word!r})")
            options.append((name, None))
            continue
        if eq:
            value = inline
        elif index < len(words):
            value = words[index]
            index += 1
        else:
            raise ExtrasError(f"{variable}: option {flag} needs a value")
        if not value:
            raise ExtrasError(f"{variable}: option {flag} has an empty value")
        options.append((name, value))
    return options, rest


@dataclass
class Changes:
    """What an installer's dry run says it would do: (name, version) pairs."""

    install: List[Tuple[str, str]] = field(default_factory=list)
    remove: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.install and not self.remove

    def describe(self) -> str:
        if self.empty:
            return "nothing to change"
        parts = []
        if self.install:
            parts.append("+ " + ", ".join(f"{n} {v}".strip() for n, v in self.install))
        if self.remove:
            parts.append("- " + ", ".join(f"{n} {v}".strip() for n, v in self.remove))
        return "; ".join(parts)


Request = TypeVar("Request")


@dataclass
class InstallPlan(Generic[Request]):
    """A request, what the installer's dry run says it changes, and the files it replaces."""

    request: Request
    changes: Changes
    backups: List[Path] = field(default_factory=list)
    seconds: float = 0.0


class Installer(Protocol):
    """One step of the extras: plan (change nothing), then apply, then close."""

    kind: str  # "conda" or "pip": which variable's request it installs
    name: str  # the tool: "uv", "pip", "rattler", "mamba", ...

    @property
    def identity(self) -> str:
        """Who the installer is, cheaply (part of the fingerprint)."""

    def describe(self) -> str:
        """The installer and its version, for the log."""

    def protect(self, core) -> None:
        """Hold ``core`` (bootstrap.extras.core.Core) at its versions while resolving."""

    def plan(self, request, target: TargetEnv) -> InstallPlan:
        """What installing ``request`` would change; raise ExtrasError if it cannot."""

    def apply(self, plan: InstallPlan) -> float:
        """Install the plan; return the seconds it took; raise ExtrasError if it fails."""

    def close(self, force: bool = False) -> None:
        """End whatever the installer keeps running between plan and apply."""


class CommandInstaller:
    """An installer that is a command (uv, pip, a conda CLI): nothing runs between plan and
    apply, and the binary itself is its identity."""

    def __init__(self, tool: str, path: str, env: Mapping[str, str]):
        self.tool = tool
        self.path = path
        self.env = env

    @property
    def name(self) -> str:
        return self.tool

    @property
    def identity(self) -> str:
        return f"{self.tool}:{proc.executable_identity(self.path)}"

    def protect(self, core) -> None:
        """Nothing to do: the plan is checked against the core once made."""

    def close(self, force: bool = False) -> None:
        """Nothing to end: each run is over when plan or apply returns."""


def installer_message(output: str, limit: int = 25) -> str:
    """The useful end of an installer's output: from its first error line, at most ``limit``
    lines (the whole tail if no line says error)."""
    lines = [line.rstrip() for line in output.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Using Python ")]
    for index, line in enumerate(lines):
        lowered = line.lower()
        if lowered.lstrip().startswith(("error", "\u00d7 ")) or "error:" in lowered:
            lines = lines[index:]
            break
    else:
        lines = lines[-limit:]
    text = "\n".join(lines[:limit])[:4000] or "(no output)"
    hint = tls_hint(output)
    return f"{text}\n{hint}" if hint else text


# What installers (uv/rustls, pip/OpenSSL, rattler, conda) say about a certificate nobody
# vouches for: a TLS-intercepting proxy or a private index.
_UNTRUSTED = (
    "unknownissuer",
    "certificate verify failed",
    "invalid peer certificate",
    "self signed certificate",
    "self-signed certificate",
    "unable to get local issuer",
)


def tls_hint(output: str) -> str:
    """A hint when the installer did not trust a server's certificate."""
    lowered = output.lower()
    if not any(marker in lowered for marker in _UNTRUSTED):
        return ""
    return (
        "hint: a server's TLS certificate was not trusted. Behind a TLS-intercepting proxy, "
        "or with a private index or channel, set EXTRA_CA_CERT to its CA certificate (a PEM "
        "file mounted in the container)"
    )
