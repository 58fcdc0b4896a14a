"""Proxy variables for the agent and its flow runs, with the Prefect Server kept direct."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional
from urllib.parse import urlsplit

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
# Always direct: this machine, and (Kubernetes) the cluster's own services.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CLUSTER_DOMAINS = (".svc", ".cluster.local", "kubernetes.default.svc")


def no_proxy(environ: Mapping[str, str], api_url: str, kubernetes: bool) -> Optional[str]:
    """NO_PROXY for the agent and its flow runs: what is set, plus the Prefect Server's host,
    this machine and (Kubernetes) the cluster's services; None when no proxy is set."""
    if not any(environ.get(name) for name in PROXY_VARIABLES):
        return None
    hosts: List[str] = []
    for name in NO_PROXY_VARIABLES:
        hosts += [host.strip() for host in (environ.get(name) or "").split(",") if host.strip()]
    server = urlsplit(api_url).hostname
    hosts += [server] if server else []
    hosts += list(LOCAL_HOSTS) + (list(CLUSTER_DOMAINS) if kubernetes else [])
    return ",".join(dict.fromkeys(hosts))


def proxy_environment(environ: Mapping[str, str], api_url: str, kubernetes: bool) -> Dict[str, str]:
    """The proxy variables the agent was given, for it and its flow runs."""
    bypass = no_proxy(environ, api_url, kubernetes)
    if bypass is None:
        return {}
    env = {name: environ[name] for name in PROXY_VARIABLES if environ.get(name)}
    env.update({name: bypass for name in NO_PROXY_VARIABLES})
    return env
