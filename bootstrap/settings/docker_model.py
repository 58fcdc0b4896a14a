"""The Docker agent's settings (``BOOTSTRAP_DOCKER_*``): its engine, what every flow-run
container gets (volumes, networks, resource defaults in Docker's own units), and how long a
failed run's container is kept."""

from __future__ import annotations

from typing import Any, List, Optional

from pydantic import BaseSettings, Field

from bootstrap.settings import rules
from bootstrap.settings.validation import blank_is_none, optional, rule
from bootstrap.util.docker_units import parse_bytes, parse_cpus

RESOURCE_SETTINGS = ("docker_memory", "docker_cpus", "docker_pids_limit", "docker_shm_size")


def size(value: Any) -> str:
    """A size Docker reads (512m, 2g), kept as written."""
    parse_bytes(value)  # ValueError in Docker's words
    return str(value).strip()


class DockerSettings(BaseSettings):
    docker_base_url: Optional[str] = Field(
        None, description="Docker engine URL (default: DOCKER_HOST, else the local socket)."
    )
    docker_no_pull: bool = Field(False, description="Never pull flow-run images.")
    docker_volumes: List[str] = Field(
        default_factory=list,
        description="Volumes for flow-run containers (host:container[:mode]).",
    )
    docker_networks: List[str] = Field(
        default_factory=list, description="Docker networks for flow-run containers."
    )
    docker_client_timeout: Optional[int] = Field(
        None, description="Docker API timeout in seconds (Prefect's default: 60)."
    )
    docker_memory: Optional[str] = Field(
        None,
        description="Memory limit of every flow-run container unless its run config "
        "sets one (docker run --memory: 512m, 2g).",
    )
    docker_cpus: Optional[float] = Field(
        None,
        description="CPUs of every flow-run container unless its run config sets them "
        "(docker run --cpus: 0.5, 2).",
    )
    docker_pids_limit: Optional[int] = Field(
        None,
        ge=-1,
        description="PIDs limit of every flow-run container (docker run "
        "--pids-limit) unless its run config sets one.",
    )
    docker_shm_size: Optional[str] = Field(
        None,
        description="Shared memory of every flow-run container (docker run --shm-size) "
        "unless its run config sets it.",
    )
    docker_failed_container_retention: float = Field(
        86400.0,
        ge=0,
        description="Seconds the container of a failed flow run is kept for docker logs "
        "before the agent removes it (a successful run's container goes at once).",
    )

    _blank_resources = rule(*RESOURCE_SETTINGS, pre=True, check=blank_is_none)
    _sizes = rule("docker_memory", "docker_shm_size", check=optional(size))
    _cpus = rule("docker_cpus", check=optional(parse_cpus))
    _timeout = rule("docker_client_timeout", check=rules.check_positive)
    _engine_url = rule("docker_base_url", check=rules.check_engine_url)
    _volume = rule("docker_volumes", each_item=True, check=rules.check_volume)
    _network = rule("docker_networks", each_item=True, check=rules.check_network)
