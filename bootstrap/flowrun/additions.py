"""What every flow run the agent starts gets from the agent, besides its flow's run config:
the proxy settings (with the Prefect Server kept direct), the extra CA certificate (as a
mounted file, never a variable) and the agent's extra packages (with its cache). Pure, but
for :func:`own_mounts`, which asks the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

from bootstrap.extras.variables import CA_VAR
from bootstrap.util.proxies import LOCAL_HOSTS

CA_IN_FLOW_RUNS = "/etc/prefect-agent/extra-ca.pem"


@dataclass
class FlowRunAdditions:
    """Variables and (Docker) volumes every flow run gets; warnings for the log."""

    env: Dict[str, str] = field(default_factory=dict)
    volumes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mount:
    source: str  # on the host
    destination: str  # in the agent's container
    volume: Optional[str] = None  # a named volume's name (None: a bind mount)

    def spec(self) -> str:
        """What a flow run's ``--volume`` names: the volume, or the host path."""
        return self.volume or self.source


_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")


def own_container_id(mountinfo: str) -> Optional[str]:
    """The agent's own container, from where Docker put its /etc/hostname."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/etc/hostname":
            found = _CONTAINER_ID.search(fields[3])
            if found:
                return found.group(1)
    return None


def host_path(path: str, mounts: Sequence[Mount]) -> Optional[str]:
    """Where ``path`` (in the agent's container) is on the host, through a bind mount."""
    target = PurePosixPath(path)
    binds = [mount for mount in mounts if mount.volume is None]
    for mount in sorted(binds, key=lambda m: len(m.destination), reverse=True):
        destination = PurePosixPath(mount.destination)
        if target == destination or destination in target.parents:
            return str(PurePosixPath(mount.source) / target.relative_to(destination))
    return None


def ca_for_docker_flow_runs(
    environ: Mapping[str, str], mounts: Sequence[Mount]
) -> FlowRunAdditions:
    """EXTRA_CA_CERT for Docker flow runs: the same file, mounted read-only from the host."""
    value = (environ.get(CA_VAR) or "").strip()
    if not value:
        return FlowRunAdditions()
    if "-----BEGIN" in value:
        return FlowRunAdditions(
            warnings=[
                f"{CA_VAR} is PEM text: flow runs do not get it (a variable would show in "
                "docker inspect). Mount the certificate as a file and point EXTRA_CA_CERT at "
                "it, and flow runs get the same file"
            ]
        )
    source = host_path(value, mounts)
    if source is None:
        return FlowRunAdditions(
            warnings=[
                f"{CA_VAR}={value} is not on a host mount of this container: flow runs do not "
                "get it. Mount it from the host (docker run -v HOST_FILE:" + value + ":ro)"
            ]
        )
    return FlowRunAdditions(
        env={CA_VAR: CA_IN_FLOW_RUNS}, volumes=[f"{source}:{CA_IN_FLOW_RUNS}:ro"]
    )


def _is_loopback(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host
    netloc += f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=netloc).geturl()


def docker_flow_run_api(api_url: str, networks: Sequence[str]) -> FlowRunAdditions:
    """Where Docker flow runs reach a Prefect Server on this host's loopback.

    Prefect's Docker agent sends flow runs of a ``localhost`` URL to
    ``host.docker.internal`` at ``[server] port`` (4200), whatever the URL's port, and leaves
    other loopback URLs alone. On the host network (``BOOTSTRAP_DOCKER_NETWORKS=host``) the
    flow run shares this loopback: the URL as it is (``localhost`` as ``127.0.0.1``).
    Otherwise the host's address on the bridge, with the URL's own port and path."""
    host = urlsplit(api_url).hostname or ""
    if not _is_loopback(host):
        return FlowRunAdditions()
    if "host" in networks:
        direct = _with_host(api_url, "127.0.0.1") if host == "localhost" else api_url
        return FlowRunAdditions(env={"PREFECT__CLOUD__API": direct})
    bridged = _with_host(api_url, "host.docker.internal")
    return FlowRunAdditions(
        env={"PREFECT__CLOUD__API": bridged},
        warnings=[
            f"the Prefect Server URL {api_url} is on this host's loopback: flow-run containers "
            f"reach it as {bridged}, which answers only if the server listens on the Docker "
            "bridge too; with BOOTSTRAP_DOCKER_NETWORKS=host they share this host's loopback"
        ],
    )


# What the agent was asked to install, for its flow runs (BOOTSTRAP_FLOW_RUN_EXTRAS).
EXTRA_VARIABLES = (
    "EXTRA_CONDA_PACKAGES",
    "EXTRA_PIP_PACKAGES",
    "EXTRA_CONDA_INSTALLER",
    "EXTRA_PIP_INSTALLER",
)
CACHE_DIR = "/var/cache/prefect-agent"


def extras_for_flow_runs(environ: Mapping[str, str], mounts: Sequence[Mount]) -> FlowRunAdditions:
    """The agent's EXTRA_* values for every flow run (whose entrypoint installs them as the
    agent's did), with the agent's cache mount (Docker) so that they come from the cache."""
    env = {name: environ[name] for name in EXTRA_VARIABLES if (environ.get(name) or "").strip()}
    if not any(name.endswith("_PACKAGES") for name in env):
        return FlowRunAdditions()
    volumes = [f"{mount.spec()}:{CACHE_DIR}" for mount in mounts if mount.destination == CACHE_DIR]
    return FlowRunAdditions(env=env, volumes=volumes)


def combine(*parts: FlowRunAdditions) -> FlowRunAdditions:
    combined = FlowRunAdditions()
    for part in parts:
        combined.env.update(part.env)
        combined.volumes += part.volumes
        combined.warnings += part.warnings
    return combined


def own_container(base_url: str, mountinfo_path: str = "/proc/self/mountinfo") -> Dict[str, Any]:
    """The agent's own container as the engine describes it (empty outside a container)."""
    try:
        with open(mountinfo_path) as handle:
            container = own_container_id(handle.read())
    except OSError:
        return {}
    if container is None:
        return {}
    import docker

    client = docker.APIClient(base_url=base_url, version="auto", timeout=10)
    try:
        return client.inspect_container(container)
    except Exception:  # not ours to inspect, or gone: nothing to go by
        return {}
    finally:
        client.close()


def own_mounts(attrs: Mapping[str, Any]) -> List[Mount]:
    """The bind mounts and volumes of the agent's container (``own_container``)."""
    return [
        Mount(item["Source"], item["Destination"], item.get("Name") if kind == "volume" else None)
        for item in attrs.get("Mounts") or []
        if (kind := item.get("Type")) in ("bind", "volume")
    ]
