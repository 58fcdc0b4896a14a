"""What counts as a secret: variable names that suggest one, credentials inside URLs, and
everything of that kind the container's environment holds.

Recognising secrets is separate from masking them (:mod:`bootstrap.util.log`): the entrypoint
(before anything else is logged), the settings, the agent's launch, the Kubernetes
manifests and the extras step all ask these questions. Standard library only.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterable, List, Mapping
from urllib.parse import urlsplit, urlunsplit

from bootstrap.util.values import parse_value

# Anywhere in the name (DB_PASSWORD, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, ...) ...
_SECRET_WORDS = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
# ... or as a whole part of it (MY_PW, DB_PASS, LUME_DB_DSN; not PWD, PASSAGE).
_SECRET_PARTS = {"PW", "PASS", "DSN"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URL_WITH_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s@]+)@")

MIN_ENVIRONMENT_SECRET = 6
# Variables whose values may carry credentials in URLs (indexes, channels, the API).
URL_VARIABLES = (
    "PREFECT__CLOUD__API",
    "PREFECT__SERVER__ENDPOINT",
    "PREFECT__SERVER__HOST",
    "EXTRA_PIP_PACKAGES",
    "EXTRA_CONDA_PACKAGES",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "CONDA_CHANNELS",
    "CONDA_CHANNEL_ALIAS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable name suggests a secret value (masked in output)."""
    if _SECRET_WORDS.search(name):
        return True
    return any(part in _SECRET_PARTS for part in re.split(r"[^A-Za-z0-9]+", name.upper()))


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


def without_credentials(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` reduced to ``scheme://``."""
    return _URL_WITH_CREDENTIALS.sub(r"\1", text)


def redact_url(url: str) -> str:
    """A URL without its user and password (for logs and files)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return without_credentials(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def flow_run_env_secrets(env: Mapping[str, str]) -> List[str]:
    """Secret values among variables handed to flow runs: by name, or credentials in URLs."""
    by_name = [str(value) for key, value in env.items() if is_secret_name(str(key)) and value]
    return by_name + url_credentials(str(value) for value in env.values())


def environment_secrets(environ: Mapping[str, str]) -> List[str]:
    """Every secret the container's environment holds, known before settings are loaded:
    the API key, credentials in URLs, and secret values for flow runs
    (``BOOTSTRAP_AGENT_ENV``, even if it does not parse as a setting yet)."""
    # Secret-looking names anywhere in the environment (an operator's AWS_SECRET_ACCESS_KEY,
    # ...); short values ("1", "true") are flags, not secrets, and would mask too much.
    found = [
        value
        for name, value in environ.items()
        if is_secret_name(name) and len(value) >= MIN_ENVIRONMENT_SECRET
    ]
    found += url_credentials(environ.get(name, "") for name in URL_VARIABLES)
    raw = environ.get("BOOTSTRAP_AGENT_ENV", "")
    try:
        flow_run_env = parse_value(raw, mapping=True) if raw.strip() else {}
    except ValueError:
        flow_run_env = {}
    if isinstance(flow_run_env, dict):
        found += flow_run_env_secrets({str(k): str(v) for k, v in flow_run_env.items()})
    key_file = environ.get("PREFECT__CLOUD__API_KEY_FILE")
    if key_file:
        with contextlib.suppress(ValueError):  # reported where the key is used
            found.append(read_secret_file(key_file, "PREFECT__CLOUD__API_KEY_FILE"))
    return [value for value in found if value]


def read_secret_file(path: str, what: str) -> str:
    """A secret from a file (a Docker or Kubernetes secret mounted as one), without its
    trailing newline. Raises ValueError naming ``what`` (never the content)."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"{what}: cannot read {path} ({reason})") from None
    if not value:
        raise ValueError(f"{what}: {path} is empty")
    return value
