"""How a settings class says which rule applies to which setting: :func:`rule` makes a
pydantic validator of a plain ``check`` function (one of ``rules``' or
``kubernetes_rules``'), :func:`optional` lets None through."""

from __future__ import annotations

import itertools
from typing import Any, Callable

from pydantic import validator

_RULE_NUMBERS = itertools.count()


def rule(*fields: str, check: Callable[[Any], Any], each_item: bool = False, pre: bool = False):
    """A validator that applies ``check`` to the value of each of ``fields``."""

    def apply(cls: Any, value: Any) -> Any:
        return check(value)

    # pydantic keys a field's validators by function name: each rule needs its own.
    apply.__name__ = apply.__qualname__ = f"rule_{next(_RULE_NUMBERS)}"
    return validator(*fields, each_item=each_item, pre=pre, allow_reuse=True)(apply)


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def blank_is_none(value: Any) -> Any:
    """An empty variable unsets an optional setting."""
    return None if isinstance(value, str) and not value.strip() else value
