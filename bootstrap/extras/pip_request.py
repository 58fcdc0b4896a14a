"""EXTRA_PIP_PACKAGES as a request, and the installers' command lines for it.

Only the options below are accepted; each reaches the installer as its own argv item. uv
reads only ``UV_*`` variables, so pip's index settings (``PIP_INDEX_URL``, ...) are handed to
it as the equivalent options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from bootstrap.extras.plan import Option, shorten, split_words, take_options
from bootstrap.extras.variables import PIP_VAR
from bootstrap.util.errors import ExtrasError

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

    options: Tuple[Option, ...] = ()
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


# Parsing the value -------------------------------------------------------------------------


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
    options, words = take_options(PIP_VAR, split_words(PIP_VAR, value), PIP_OPTIONS)
    for word in words:
        check_requirement(word)
    if not words and not any(name in ("requirement", "editable") for name, _ in options):
        raise ExtrasError(f"{PIP_VAR}={value!r} names no package to install")
    return PipRequest(tuple(options), tuple(words))


def pip_env_options(request: PipRequest, environ: Mapping[str, str]) -> PipRequest:
    """Add pip's index settings (PIP_INDEX_URL, ...) as options, for uv, which reads only
    UV_* variables. Options in the request and UV_* variables take precedence."""
    present = set(request.option_names())
    extra: List[Option] = []
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


def uv_options(request: PipRequest, skip: Tuple[str, ...] = ()) -> List[str]:
    """The request's options as uv flags (leaving out those named in ``skip``)."""
    argv: List[str] = []
    for name, value in request.options:
        if name in skip:
            continue
        argv.extend(_UV_FLAGS[name])
        if value is not None:
            argv.append(value)
    return argv


def uv_argv(
    uv: str, python: str, request: PipRequest, dry_run: bool, constraint: Optional[str] = None
) -> List[str]:
    argv = [uv, "pip", "install", "--python", python]
    if dry_run:
        argv.append("--dry-run")
    if constraint:
        argv += ["--constraint", constraint]
    return [*argv, *uv_options(request), *request.requirements]


def requirements_file(request: PipRequest) -> str:
    """What the request asks for as a requirements file (``uv pip compile``'s input)."""
    lines = list(request.requirements)
    lines += [f"-r {value}" for name, value in request.options if name == "requirement"]
    lines += [f"-e {value}" for name, value in request.options if name == "editable"]
    return "".join(f"{line}\n" for line in lines)


def pip_argv(
    python: str, request: PipRequest, dry_run: bool, constraint: Optional[str] = None
) -> List[str]:
    argv = [python, "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
    if dry_run:
        argv.append("--dry-run")
    if constraint:
        argv += ["--constraint", constraint]
    for name, value in request.options:
        argv.append(f"--{name}")
        if value is not None:
            argv.append(value)
    return [*argv, *request.requirements]
