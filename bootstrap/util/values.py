"""The syntax of list and mapping values in ``BOOTSTRAP_*`` variables: JSON, or ``a,b`` (also
one item per line) and ``KEY=VALUE`` items. Standard library only: the entrypoint reads
``BOOTSTRAP_AGENT_ENV`` with it before settings are loaded, to mask its secrets."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List


def split_list(raw: str) -> List[str]:
    """``a, b`` or one item per line: the items, stripped, empty ones dropped."""
    return [item.strip() for item in re.split(r"[,\n]", raw) if item.strip()]


def parse_pairs(items: Iterable[str]) -> Dict[str, str]:
    """``KEY=VALUE`` items (the value may contain ``=``) as a mapping; the key is stripped."""
    pairs: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def parse_value(raw: str, mapping: bool) -> Any:
    """A list or mapping variable's value: JSON when it starts like JSON, else items."""
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError as exc:
            form = "a JSON object" if text.startswith("{") else 'a JSON list (["a", "b"])'
            items = "KEY=VALUE,KEY2=VALUE2" if mapping else "a,b"
            raise ValueError(
                f"it starts like JSON but is not {form}: {exc}; without brackets, write {items}"
            ) from None
    items = split_list(text)
    return parse_pairs(items) if mapping else items
