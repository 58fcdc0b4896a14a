"""The Docker agent's settings (``BOOTSTRAP_DOCKER_*``): its engine, what every flow-run
container gets (volumes, networks, resource defaults in Docker's own units), and how long a
failed run's container is kept."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from pydantic import BaseSettings, Field, validator

from bootstrap.settings import rules
from bootstrap.settings.kubernetes_rules import check_image_reference
from bootstrap.settings.validation import blank_is_none, optional, rule
from bootstrap.util.docker_units import parse_bytes, parse_cpus

RESOURCE_SETTINGS = ("docker_memory", "docker_cpus", "docker_pids_limit", "docker_shm_size")
# default -> its ceiling (bootstrap.settings.model, checked first) and how to compare them
CEILING_OF = {
    "docker_memory": ("flow_run_max_memory", parse_bytes),
    "docker_cpus": ("flow_run_max_cpus", float),
    "docker_pids_limit": ("flow_run_max_pids", int),
}


def size(value: Any) -> str:
    """A size Docker reads (512m, 2g), kept as written."""
    parse_bytes(value)  # ValueError in Docker's words
    return str(value).strip()


class DockerSettings(BaseSettings):
    docker_base_url: Optional[str] = Field(
        None, description="Docker engine URL (default: DOCKER_HOST, else the local socket)."
    )
    docker_no_pull: bool = Field(
        False, description="Never pull flow-run images (BOOTSTRAP_DOCKER_PULL_POLICY=Never)."
    )
    docker_pull_policy: Optional[str] = Field(
        None,
        description="When the agent pulls a flow run's image: IfNotPresent (only when the "
        "engine lacks it), Always (every run; for mutable tags), Never (images built or "
        "loaded on the host). Unset: Always for a registry image tagged latest or untagged, "
        "IfNotPresent for the rest (Kubernetes' rule).",
    )
    docker_pull_attempts: int = Field(
        3, ge=1, le=10, description="Attempts at pulling an image before its run ends Failed."
    )
    docker_config_file: Optional[str] = Field(
        None,
        description="A Docker config.json with registry credentials (docker login's, or a "
        "Kubernetes .dockerconfigjson), e.g. a mounted secret: read by the agent at each "
        "pull, never passed to flow runs. Docker's own DOCKER_CONFIG works too.",
    )
    docker_flow_run_check: str = Field(
        "error",
        description="Before polling, start one container as a flow run would and check it "
        "reaches the Prefect Server: error (default: exit 5 if not), warn, or off.",
    )
    docker_flow_run_check_image: Optional[str] = Field(
        None,
        description="The image of that check (default: the agent's own, which flow runs of "
        "LUME-services use).",
    )
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
    _blank_pull = rule("docker_pull_policy", "docker_config_file", pre=True, check=blank_is_none)
    _pull_policy = rule("docker_pull_policy", check=optional(rules.check_pull_policy))
    _blank_check_image = rule("docker_flow_run_check_image", pre=True, check=blank_is_none)
    _check_image = rule("docker_flow_run_check_image", check=optional(check_image_reference))
    _check_mode = rule("docker_flow_run_check", check=rules.one_of("error", "warn", "off"))
    _config_file = rule("docker_config_file", check=optional(rules.check_absolute_path))
    _timeout = rule("docker_client_timeout", check=rules.check_positive)
    _engine_url = rule("docker_base_url", check=rules.check_engine_url)
    _volume = rule("docker_volumes", each_item=True, check=rules.check_volume)
    _network = rule("docker_networks", each_item=True, check=rules.check_network)

    @validator(*CEILING_OF)
    def _within_ceiling(cls, value: Any, values: Dict[str, Any], field: Any) -> Any:
        ceiling, parse = CEILING_OF[field.name]
        rules.within_ceiling(value, values.get(ceiling), parse, f"BOOTSTRAP_{ceiling.upper()}")
        return value

    @validator("docker_pull_policy")
    def _one_pull_rule(cls, policy: Optional[str], values: Dict[str, Any]) -> Optional[str]:
        if values.get("docker_no_pull") and policy not in (None, "Never"):
            raise ValueError(
                f"BOOTSTRAP_DOCKER_NO_PULL=true is the policy Never, not {policy}: set one"
            )
        return policy

    def pull_policy(self) -> Optional[str]:
        """The policy in force (BOOTSTRAP_DOCKER_NO_PULL is Never; None: the default rule,
        bootstrap.agent.image_pull.default_policy)."""
        if self.docker_no_pull:
            return "Never"
        return self.docker_pull_policy
