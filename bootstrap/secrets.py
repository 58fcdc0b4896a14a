"""What counts as a secret: variable names that suggest one, and credentials inside URLs.

Recognising secrets is separate from masking them (:mod:`bootstrap.log`): the settings,
the agent's launch, the Kubernetes manifests and the extras step all ask these questions.
"""

from __future__ import annotations

import re
from typing import Iterable, List
from urllib.parse import urlsplit

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_secret_name(name: str) -> bool:
    """Whether an environment variable name suggests a secret value (masked in output)."""
    return bool(_SECRET_NAME.search(name))


def url_credentials(values: Iterable[str]) -> List[str]:
    """Credentials embedded in URLs (``https://user:token@host/...``) among the words of
    ``values``: the password, or the user name when it is the only credential (a token)."""
    found: List[str] = []
    for value in values:
        for word in value.split():
            if not _URL.match(word) or "@" not in word:
                continue
            try:
                parts = urlsplit(word)
            except ValueError:
                continue
            if parts.password:
                found.append(parts.password)
            elif parts.username:
                found.append(parts.username)
    return found
