"""What the bootstrap decided for the launcher, handed over in one environment variable."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Mapping, Optional

CONFIG_ENV = "PREFECT_AGENT_LAUNCHER"


@dataclass(frozen=True)
class LauncherConfig:
    agent_type: str = "docker"
    max_poll_interval: float = 10.0  # prefect's own ceiling, when started without settings
    liveness_window: float = 600.0  # seconds without a successful poll before "unhealthy"
    outage_limit: float = 0.0  # seconds of API or engine failure before stopping; 0: never
    engine_url: Optional[str] = None  # the Docker agent's engine
    metrics_port: Optional[int] = None
    metrics_host: str = ""
    log_format: str = "text"
    log_level: str = "INFO"
    poke_interval: float = 1.0  # at most one extra poll per this many seconds
    startup_seconds: Dict[str, float] = field(default_factory=dict)
    policy: Optional[Dict[str, Any]] = None  # the flow-run policy (None: not enforced)
    failed_container_retention: float = 86400.0  # seconds a failed run's container is kept
    max_flow_runs: int = 0  # flow runs alive at once (bootstrap.agent.capacity); 0: no limit
    docker_defaults: Dict[str, Any] = field(default_factory=dict)  # create_host_config kwargs
    pull_policy: Optional[str] = None  # bootstrap.agent.image_pull (None: its default rule)
    pull_attempts: int = 3
    docker_config_file: Optional[str] = None  # a path: the credentials stay in the file
    # Kubernetes: this image (flow runs' default) and the uid its pods run as
    kubernetes_image: Optional[str] = None
    kubernetes_run_as_user: int = 1000

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LauncherConfig:
        raw = environ.get(CONFIG_ENV)
        if not raw:
            return cls()
        data = json.loads(raw)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def poll_intervals(stock: Mapping[int, float], ceiling: float) -> Dict[int, float]:
    """Prefect's back-off (0.25 s doubling to 10 s) with no wait longer than ``ceiling``."""
    return {step: min(seconds, ceiling) for step, seconds in stock.items()}
