"""Connect to the Prefect Server that Prefect's configuration names."""

from __future__ import annotations

import os
from typing import Mapping
from urllib.parse import urlsplit

from bootstrap.api.client import PrefectApi, resolve_api
from bootstrap.util.log import logger, register_secrets
from bootstrap.util.proxies import NO_PROXY_VARIABLES, no_proxy


def connect(environ: Mapping[str, str]) -> PrefectApi:
    """A client for the configured server (its key masked in logs). With proxy variables
    set, the server stays direct (NO_PROXY), for this process and the agent."""
    config = resolve_api(environ)
    bypass = no_proxy(environ, config.url, kubernetes=False)
    if bypass is not None and environ is os.environ:
        os.environ.update({name: bypass for name in NO_PROXY_VARIABLES})
    if config.api_key:
        register_secrets([config.api_key])
        parts = urlsplit(config.url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            logger.warning(
                "PREFECT__CLOUD__API_KEY is sent in clear (http://) to %s: use https://",
                parts.hostname,
            )
    return PrefectApi(config)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
