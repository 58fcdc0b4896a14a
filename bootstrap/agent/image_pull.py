"""Which flow-run images the Docker agent pulls, and how (``BOOTSTRAP_DOCKER_PULL_POLICY``).

Prefect 1.2.4 pulls an image whose name has a ``/`` on every run, or never (``--no-pull``),
and reads the engine's answer only for its debug log: a pull that failed is logged as
"Successfully pulled", and the run fails a moment later on the engine's "No such image".
Here prefect never pulls (the hook sets its ``no_pull``); :class:`ImagePuller` decides per
run with Kubernetes' policies, pulls with retries, reads every line of the engine's answer,
and raises :class:`ImagePullFailed`, whose message becomes the run's Failed state, naming
the image and the engine's error.

Credentials: the engine client reads Docker's own ``DOCKER_CONFIG`` directory; a config.json
mounted as a secret (``BOOTSTRAP_DOCKER_CONFIG_FILE``) is read at each pull. Neither reaches
argv, the launcher's configuration or a flow run's environment.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

logger = logging.getLogger("bootstrap.agent")

POLICIES = ("IfNotPresent", "Always", "Never")


def default_policy(image: str) -> str:
    """The policy when none is set, Kubernetes' rule: ``Always`` for an image of a registry
    (a name with a ``/``, which prefect 1.2.4 pulled on every run) tagged ``latest`` or
    untagged, so that a new ``latest`` is run; ``IfNotPresent`` otherwise."""
    from docker.utils import parse_repository_tag

    if "@" in image:
        return "IfNotPresent"
    repository, tag = parse_repository_tag(image)
    return "Always" if "/" in repository and tag in (None, "latest") else "IfNotPresent"


class ImagePullFailed(RuntimeError):
    """A flow run's image cannot be had; the message is the run's Failed state."""


class _AttemptFailed(Exception):
    """One pull attempt failed (retried)."""


def needs_pull(policy: str, present: bool) -> bool:
    """Whether to pull an image the engine has (``present``) or lacks, under ``policy``."""
    if policy == "Always":
        return True
    if policy == "Never":
        return False
    return not present


def stream_error(lines: Iterable[Any]) -> Optional[str]:
    """The error in the engine's streamed answer to a pull, if any (it reports a failure as
    a line of the stream, after a 200)."""
    for line in lines:
        if isinstance(line, dict) and (line.get("error") or line.get("errorDetail")):
            detail = line.get("errorDetail") or {}
            return str(line.get("error") or detail.get("message") or "unknown error")
    return None


def registry_of(image: str) -> str:
    """The registry an image reference names (``docker.io`` when it names none)."""
    from docker.auth import resolve_repository_name
    from docker.utils import parse_repository_tag

    repository, _ = parse_repository_tag(image)
    return resolve_repository_name(repository)[0]


def credentials(config_file: Optional[str], image: str) -> Optional[Dict[str, Any]]:
    """The credentials ``config_file`` (a Docker config.json) holds for the image's
    registry; None: the engine client's own (DOCKER_CONFIG), if any."""
    if not config_file:
        return None
    from docker.auth import load_config

    return load_config(config_path=config_file).resolve_authconfig(registry_of(image)) or None


def check_config_file(path: str) -> None:
    """Raise ValueError (naming the file, never its content) unless ``path`` is a Docker
    config.json the agent can read."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"cannot read {path} as a Docker config.json ({reason})") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise ValueError(f"{path} is not a Docker config.json (no 'auths' object)")


@dataclass
class ImagePuller:
    policy: Optional[str] = None  # None: default_policy(image)
    attempts: int = 3
    config_file: Optional[str] = None
    on_pull: Callable[[str, float], None] = lambda outcome, seconds: None
    backoff: float = 1.0  # seconds before the second attempt, doubling

    def ensure(self, client: Any, image: str) -> None:
        """Make ``image`` present on the engine of ``client`` (a docker.APIClient) as the
        policy says, or raise :class:`ImagePullFailed`."""
        present = self._present(client, image)
        policy = self.policy or default_policy(image)
        if not needs_pull(policy, present):
            if not present:
                raise ImagePullFailed(
                    f"Image {image} is not on the agent's Docker engine and "
                    "BOOTSTRAP_DOCKER_PULL_POLICY is Never: build or load it on that host "
                    f"(or docker pull {image}), or choose IfNotPresent"
                )
            return
        started = time.monotonic()
        try:
            self._pull(client, image)
        except ImagePullFailed:
            self.on_pull("failed", time.monotonic() - started)
            raise
        seconds = time.monotonic() - started
        self.on_pull("pulled", seconds)
        logger.info("Pulled image %s in %.1f s (policy %s)", image, seconds, policy)

    def _present(self, client: Any, image: str) -> bool:
        import docker

        try:
            client.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _pull(self, client: Any, image: str) -> None:
        import docker
        import requests
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        try:
            auth = credentials(self.config_file, image)
        except Exception as exc:  # a secret replaced since start-up by something unreadable
            raise ImagePullFailed(
                f"Image pull of {image} failed: BOOTSTRAP_DOCKER_CONFIG_FILE: {exc}"
            ) from None
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            retry=retry_if_exception_type(_AttemptFailed),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    logger.info("Pulling image %s ...", image)
                    try:
                        lines = client.pull(image, stream=True, decode=True, auth_config=auth)
                        error = stream_error(lines)
                    except (docker.errors.APIError, requests.RequestException) as exc:
                        error = getattr(exc, "explanation", None) or str(exc)
                    if error:
                        logger.warning("Pulling image %s failed: %s", image, error)
                        raise _AttemptFailed(error)
        except _AttemptFailed as exc:
            tries = f"{self.attempts} attempts" if self.attempts > 1 else "1 attempt"
            raise ImagePullFailed(f"Image pull of {image} failed ({tries}): {exc}") from None
