"""Pure planning for extra packages: parse the variables, build installer argvs, fingerprints.

Nothing here runs a process or touches the environment; :mod:`bootstrap.extras.pip`,
:mod:`bootstrap.extras.conda` and :mod:`bootstrap.extras.journal` are the edges.

Values are split with shell-word rules (:func:`shlex.split`) and only ever passed as argv
items, never to a shell: ``numpy; touch /tmp/pwned`` is three words, the first of which is
an invalid requirement, so the whole value is rejected before any installer runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Generic, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar
from urllib.parse import urlsplit

from bootstrap.errors import ExtrasError

CONDA_VAR = "EXTRA_CONDA_PACKAGES"
PIP_VAR = "EXTRA_PIP_PACKAGES"
APT_VAR = "EXTRA_APT_PACKAGES"
CONDA_INSTALLER_VAR = "EXTRA_CONDA_INSTALLER"  # auto | mamba | micromamba | conda | rattler
PIP_INSTALLER_VAR = "EXTRA_PIP_INSTALLER"  # auto | uv | pip
CA_VAR = "EXTRA_CA_CERT"  # a PEM file (or PEM text) trusted by the installers only

CONDA_INSTALLERS = ("mamba", "micromamba", "conda", "rattler")
PIP_INSTALLERS = ("uv", "pip")

# Variables that change what an install would do: part of the fingerprint.
FINGERPRINT_ENV = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_PRE",
    "PIP_CONSTRAINT",
    "PIP_TRUSTED_HOST",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_PRERELEASE",
    "UV_CONSTRAINT",
    "UV_INDEX_STRATEGY",
    "CONDA_CHANNELS",
    "CONDA_CHANNEL_ALIAS",
    CONDA_INSTALLER_VAR,
    PIP_INSTALLER_VAR,
)


# Pip ----------------------------------------------------------------------------------------

# Accepted pip options: alias -> (canonical long name, takes a value). Anything else is
# rejected: an unknown word starting with "-" is a typo or an attempt to smuggle options in.
PIP_OPTIONS: Dict[str, Tuple[str, bool]] = {
    "-i": ("index-url", True),
    "--index-url": ("index-url", True),
    "--extra-index-url": ("extra-index-url", True),
    "-f": ("find-links", True),
    "--find-links": ("find-links", True),
    "--no-index": ("no-index", False),
    "--pre": ("pre", False),
    "--trusted-host": ("trusted-host", True),
    "-c": ("constraint", True),
    "--constraint": ("constraint", True),
    "-r": ("requirement", True),
    "--requirement": ("requirement", True),
    "-e": ("editable", True),
    "--editable": ("editable", True),
    "--no-deps": ("no-deps", False),
    "-U": ("upgrade", False),
    "--upgrade": ("upgrade", False),
    "--force-reinstall": ("force-reinstall", False),
    "--only-binary": ("only-binary", True),
    "--no-binary": ("no-binary", True),
    "--no-build-isolation": ("no-build-isolation", False),
}

# canonical pip option -> uv pip install flag(s)
_UV_FLAGS: Dict[str, Tuple[str, ...]] = {
    "index-url": ("--index-url",),
    "extra-index-url": ("--extra-index-url",),
    "find-links": ("--find-links",),
    "no-index": ("--no-index",),
    "pre": ("--prerelease", "allow"),
    "trusted-host": ("--allow-insecure-host",),
    "constraint": ("--constraint",),
    "requirement": ("--requirement",),
    "editable": ("--editable",),
    "no-deps": ("--no-deps",),
    "upgrade": ("--upgrade",),
    "force-reinstall": ("--reinstall",),
    "only-binary": ("--only-binary",),
    "no-binary": ("--no-binary",),
    "no-build-isolation": ("--no-build-isolation",),
}

# pip's environment variables uv does not read, as (PIP_ name, canonical option, uv's names
# that take precedence, list-valued). Translated to uv options unless the request or a UV_
# variable already says otherwise.
_PIP_ENV_FOR_UV = (
    ("PIP_INDEX_URL", "index-url", ("UV_INDEX_URL", "UV_DEFAULT_INDEX"), False),
    ("PIP_EXTRA_INDEX_URL", "extra-index-url", ("UV_EXTRA_INDEX_URL", "UV_INDEX"), True),
    ("PIP_FIND_LINKS", "find-links", ("UV_FIND_LINKS",), True),
    ("PIP_TRUSTED_HOST", "trusted-host", ("UV_INSECURE_HOST",), True),
    ("PIP_CONSTRAINT", "constraint", ("UV_CONSTRAINT",), True),
    ("PIP_NO_INDEX", "no-index", ("UV_NO_INDEX",), False),
    ("PIP_PRE", "pre", ("UV_PRERELEASE",), False),
)

_TRUE = {"1", "true", "yes", "on"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PATH = re.compile(r"^(\.{1,2}/|/|~)")


@dataclass(frozen=True)
class PipRequest:
    """EXTRA_PIP_PACKAGES, split into accepted options and requirement words."""

    options: Tuple[Tuple[str, Optional[str]], ...] = ()
    requirements: Tuple[str, ...] = ()

    def option_names(self) -> List[str]:
        return [name for name, _ in self.options]

    def describe(self) -> str:
        files = [
            f"-{'r' if n == 'requirement' else 'e'} {v}"
            for n, v in self.options
            if n in ("requirement", "editable")
        ]
        return shorten(" ".join([*self.requirements, *files]))


@dataclass(frozen=True)
class CondaRequest:
    """EXTRA_CONDA_PACKAGES: channels (in order), override flag, match specs."""

    channels: Tuple[str, ...] = ()
    specs: Tuple[str, ...] = ()
    override_channels: bool = False

    def describe(self) -> str:
        return shorten(" ".join(self.specs))


def shorten(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters for log lines and messages: a value can be as
    long as the kernel allows a variable (128 KiB)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def split_words(variable: str, value: str) -> List[str]:
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError as exc:  # unbalanced quotes
        raise ExtrasError(f"{variable}: cannot split {value!r} into words: {exc}") from None


def _take_options(
    variable: str, words: Sequence[str], table: Mapping[str, Tuple[str, bool]]
) -> Tuple[List[Tuple[str, Optional[str]]], List[str]]:
    options: List[Tuple[str, Optional[str]]] = []
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


def check_requirement(word: str) -> None:
    """A PEP 508 requirement, a URL, or a path: anything else is rejected here."""
    if _URL.match(word) or _PATH.match(word):
        return
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(word)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise ExtrasError(
            f"{PIP_VAR}: {word!r} is not a valid requirement ({reason}); values are split "
            "into words like a shell would, but never run by one"
        ) from None


def parse_pip(value: str) -> PipRequest:
    options, words = _take_options(PIP_VAR, split_words(PIP_VAR, value), PIP_OPTIONS)
    for word in words:
        check_requirement(word)
    if not words and not any(name in ("requirement", "editable") for name, _ in options):
        raise ExtrasError(f"{PIP_VAR}={value!r} names no package to install")
    return PipRequest(tuple(options), tuple(words))


def pip_env_options(request: PipRequest, environ: Mapping[str, str]) -> PipRequest:
    """Add pip's index settings (PIP_INDEX_URL, ...) as options, for uv, which reads only
    UV_* variables. Options in the request and UV_* variables take precedence."""
    present = set(request.option_names())
    extra: List[Tuple[str, Optional[str]]] = []
    for pip_name, option, uv_names, is_list in _PIP_ENV_FOR_UV:
        value = environ.get(pip_name, "").strip()
        if not value or option in present or any(environ.get(name) for name in uv_names):
            continue
        if option in ("no-index", "pre"):
            if value.lower() in _TRUE:
                extra.append((option, None))
        elif is_list:
            extra.extend((option, item) for item in value.split())
        else:
            extra.append((option, value))
    return PipRequest(request.options + tuple(extra), request.requirements)


def uv_argv(uv: str, python: str, request: PipRequest, dry_run: bool) -> List[str]:
    argv = [uv, "pip", "install", "--python", python]
    if dry_run:
        argv.append("--dry-run")
    for name, value in request.options:
        argv.extend(_UV_FLAGS[name])
        if value is not None:
            argv.append(value)
    return [*argv, *request.requirements]


def pip_argv(python: str, request: PipRequest, dry_run: bool) -> List[str]:
    argv = [python, "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
    if dry_run:
        argv.append("--dry-run")
    for name, value in request.options:
        argv.append(f"--{name}")
        if value is not None:
            argv.append(value)
    return [*argv, *request.requirements]


# Conda --------------------------------------------------------------------------------------

CONDA_OPTIONS: Dict[str, Tuple[str, bool]] = {
    "-c": ("channel", True),
    "--channel": ("channel", True),
    "--override-channels": ("override-channels", False),
}


def check_match_spec(word: str) -> None:
    """Reject what is not a conda match spec (py-rattler's parser, when installed)."""
    if word.startswith("-") or any(char in word for char in ";&`$\n"):
        raise ExtrasError(f"{CONDA_VAR}: {word!r} is not a conda package spec")
    try:
        from rattler import MatchSpec
    except ImportError:  # pragma: no cover - the image always has py-rattler
        return
    try:
        MatchSpec(word)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExtrasError(f"{CONDA_VAR}: {word!r} is not a conda package spec ({reason})") from None


def parse_conda(value: str) -> CondaRequest:
    options, words = _take_options(CONDA_VAR, split_words(CONDA_VAR, value), CONDA_OPTIONS)
    if not words:
        raise ExtrasError(f"{CONDA_VAR}={value!r} names no package to install")
    for word in words:
        check_match_spec(word)
    channels = [channel for name, channel in options if name == "channel" and channel]
    return CondaRequest(
        channels=tuple(dict.fromkeys(channels)),
        specs=tuple(words),
        override_channels=any(name == "override-channels" for name, _ in options),
    )


def conda_channels(request: CondaRequest, environ: Mapping[str, str]) -> List[str]:
    """Channels for an installer without conda's configuration (py-rattler): the request's,
    then CONDA_CHANNELS (comma-separated), else conda-forge; ``chan::pkg`` specs add chan."""
    channels = list(request.channels)
    for spec in request.specs:
        if "::" in spec:
            channels.append(spec.split("::", 1)[0])
    if not request.override_channels or not channels:
        configured = [item.strip() for item in environ.get("CONDA_CHANNELS", "").split(",")]
        channels.extend(item for item in configured if item)
    if not channels:
        channels.append("conda-forge")
    return list(dict.fromkeys(channels))


def conda_cli_argv(tool: str, prefix: str, request: CondaRequest, dry_run: bool) -> List[str]:
    argv = [tool, "install", "--yes", "--prefix", prefix]
    if dry_run:
        argv += ["--dry-run", "--json"]
    else:
        argv += ["--quiet"] if tool != "micromamba" else []
    for channel in request.channels:
        argv += ["--channel", channel]
    if request.override_channels:
        argv.append("--override-channels")
    return [*argv, *request.specs]


# Planned changes ------------------------------------------------------------------------------


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


_UV_LINE = re.compile(r"^\s*([+\-~])\s+([A-Za-z0-9][A-Za-z0-9._-]*)(?:==(\S+)|\s+@\s+(\S+))?")


def parse_uv_dry_run(output: str) -> Changes:
    """``uv pip install --dry-run`` lines `` + name==1.0``, `` - name==0.9``, `` ~ ...``."""
    changes = Changes()
    for line in output.splitlines():
        match = _UV_LINE.match(line)
        if not match:
            continue
        sign, name, version, url = match.groups()
        item = (name, version or url or "")
        if sign == "+":
            changes.install.append(item)
        elif sign == "-":
            changes.remove.append(item)
        else:  # ~ reinstall
            changes.install.append(item)
            changes.remove.append(item)
    return changes


def parse_pip_dry_run(output: str) -> Changes:
    """pip's ``Would install a-1.0 b-2.0`` line (replaced packages are not listed)."""
    changes = Changes()
    for line in output.splitlines():
        if line.startswith("Would install "):
            for item in line[len("Would install ") :].split():
                name, _, version = item.rpartition("-")
                changes.install.append((name or item, version if name else ""))
    return changes


def _conda_action(item: object) -> Tuple[str, str, str]:
    if isinstance(item, dict):
        name = str(item.get("name", ""))
        version = str(item.get("version", ""))
        build = str(item.get("build_string", item.get("build", "")))
        if not name and item.get("dist_name"):
            name, version, build = str(item["dist_name"]).rsplit("-", 2)
        return name, version, build
    text = str(item).split("::")[-1]
    name, version, build = text.rsplit("-", 2)
    return name, version, build


class UnreadablePlan(ExtrasError):
    """The conda installer's dry run printed no JSON plan."""


def parse_conda_dry_run(output: str) -> Tuple[Changes, List[str]]:
    """``conda|mamba|micromamba install --dry-run --json``: (changes, unlinked dist names).

    Raises ExtrasError with conda's own message when the JSON reports an error."""
    start = output.find("{")
    if start < 0:
        raise UnreadablePlan(f"the conda installer printed no plan:\n{output[-2000:]}")
    try:
        data = json.loads(output[start:])
    except json.JSONDecodeError:
        raise UnreadablePlan(f"cannot read the conda installer's plan:\n{output[-2000:]}") from None
    if data.get("error") or data.get("success") is False:
        message = data.get("message") or data.get("error") or "unknown error"
        raise ExtrasError(str(message))
    actions = data.get("actions") or {}
    if isinstance(actions, list):  # some versions: a list of transactions
        merged: Dict[str, list] = {}
        for entry in actions:
            for key, value in (entry or {}).items():
                if isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
        actions = merged
    changes = Changes()
    unlinked: List[str] = []
    for item in actions.get("LINK", []) or []:
        name, version, _ = _conda_action(item)
        changes.install.append((name, version))
    for item in actions.get("UNLINK", []) or []:
        name, version, build = _conda_action(item)
        changes.remove.append((name, version))
        unlinked.append(f"{name}-{version}-{build}")
    return changes, unlinked


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
    text = "\n".join(lines[:limit])
    return text[:4000] or "(no output)"


# Fingerprint, secrets, TLS --------------------------------------------------------------------


def fingerprint(
    conda: Optional[CondaRequest],
    conda_installer: str,
    pip: Optional[PipRequest],
    pip_installer: str,
    environ: Mapping[str, str],
    python: str,
) -> str:
    """A digest of everything that decides the result of an install: the normalized requests,
    the installers' identities, the index/channel variables and the Python version."""
    payload = {
        "version": 1,
        "python": python,
        "conda": None
        if conda is None
        else {
            "installer": conda_installer,
            "channels": list(conda.channels),
            "override": conda.override_channels,
            "specs": list(conda.specs),
        },
        "pip": None
        if pip is None
        else {
            "installer": pip_installer,
            "options": [list(option) for option in pip.options],
            "requirements": list(pip.requirements),
        },
        "env": {name: environ[name] for name in FINGERPRINT_ENV if environ.get(name)},
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def url_secrets(values: Iterable[str]) -> List[str]:
    """Credentials embedded in URLs (``https://user:token@host/...``), to mask in logs."""
    secrets: List[str] = []
    for value in values:
        for word in value.split():
            if not _URL.match(word) or "@" not in word:
                continue
            try:
                parts = urlsplit(word)
            except ValueError:
                continue
            if parts.password:
                secrets.append(parts.password)
            elif parts.username:  # a token as the user name
                secrets.append(parts.username)
    return secrets


def ca_environment(bundle: str) -> Dict[str, str]:
    """Variables that make every installer trust ``bundle`` (a PEM file)."""
    return {
        "SSL_CERT_FILE": bundle,  # uv, py-rattler, OpenSSL
        "PIP_CERT": bundle,  # pip
        "REQUESTS_CA_BUNDLE": bundle,  # requests (conda)
        "CONDA_SSL_VERIFY": bundle,  # conda, mamba
        "MAMBA_SSL_VERIFY": bundle,  # micromamba
    }


def is_pem(value: str) -> bool:
    return "-----BEGIN CERTIFICATE-----" in value
