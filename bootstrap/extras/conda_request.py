"""EXTRA_CONDA_PACKAGES as a request: channels, the override flag and match specs, parsed
with shell-word rules and checked by py-rattler's parser (nothing runs a shell)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from bootstrap.extras.plan import shorten, split_words, take_options
from bootstrap.extras.variables import CONDA_VAR
from bootstrap.util.errors import ExtrasError

CONDA_OPTIONS: Dict[str, Tuple[str, bool]] = {
    "-c": ("channel", True),
    "--channel": ("channel", True),
    "--override-channels": ("override-channels", False),
}


@dataclass(frozen=True)
class CondaRequest:
    """EXTRA_CONDA_PACKAGES: channels (in order), override flag, match specs."""

    channels: Tuple[str, ...] = ()
    specs: Tuple[str, ...] = ()
    override_channels: bool = False

    def describe(self) -> str:
        return shorten(" ".join(self.specs))


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
    options, words = take_options(CONDA_VAR, split_words(CONDA_VAR, value), CONDA_OPTIONS)
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
