"""The images' bill of materials and build metadata: a valid CycloneDX document that lists
every locked package at its locked version and the base's Debian packages, taken out with
`make sbom`; labels that do not change between rebuilds of one commit."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path
from typing import Dict
from urllib.parse import quote

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.markers import Marker
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
LOCKS = {"dev": "requirements-dev.lock", "prod": "requirements.lock"}
# The marker environment of the image's Python (what the lock's markers are evaluated against).
MARKER_ENVIRONMENT = (
    "import json; from packaging.markers import default_environment; "
    "print(json.dumps(default_environment()))"
)


def make_sbom(docker_cli: str, image: str, target: Path) -> dict:
    subprocess.run(
        ["make", "--no-print-directory", "sbom", f"RUN_IMAGE={image}", f"SBOM_FILE={target}",
         f"DOCKER={docker_cli}"],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return json.loads(target.read_text())


def locked(lock: Path, environment: Dict[str, str]) -> Dict[str, str]:
    """name -> version of the lock's entries that apply to ``environment``."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?$", line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate(environment)):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def image_labels(docker_cli: str, image: str) -> Dict[str, str]:
    inspected = subprocess.run(
        [docker_cli, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(inspected.stdout)


def python_components(bom: dict) -> Dict[str, str]:
    return {
        canonicalize_name(component["name"]): component["version"]
        for component in bom["components"]
        if component.get("purl", "").startswith("pkg:pypi/")
    }


def test_the_sbom_is_valid_cyclonedx_listing_every_locked_package(
    docker_cli: str, any_image: str, containers, tmp_path: Path
) -> None:
    bom = make_sbom(docker_cli, any_image, tmp_path / "sbom.cdx.json")
    validator = JsonStrictValidator(SchemaVersion.from_version(bom["specVersion"]))
    errors = validator.validate_str((tmp_path / "sbom.cdx.json").read_text())
    assert errors is None, errors

    target = any_image.rsplit(":", 1)[1].split("-")[0]  # dev, prod (dev-arm64 ...)
    environment = json.loads(
        containers.run_to_end(any_image, ["python", "-c", MARKER_ENVIRONMENT]).stdout
    )
    expected = locked(REPO / "prefect-agent-docker" / LOCKS[target], environment)
    listed = python_components(bom)
    if "py-rattler" not in listed:  # left out on a base with a conda CLI (build.sh)
        expected.pop("py-rattler", None)
    missing = {name: version for name, version in expected.items() if listed.get(name) != version}
    assert missing == {}, f"locked but not in the SBOM (or another version): {missing}"
    assert listed[canonicalize_name("prefect-agent-bootstrap")]

    debian = {c["name"]: c for c in bom["components"] if c["purl"].startswith("pkg:deb/")}
    assert {"python3", "tini", "ca-certificates"} <= set(debian)
    tini = f"pkg:deb/debian/tini@{quote(debian['tini']['version'], safe='')}?arch="
    assert debian["tini"]["purl"].startswith(tini)

    image = bom["metadata"]["component"]
    labels = image_labels(docker_cli, any_image)
    assert (image["type"], image["name"]) == ("container", "prefect-agent")
    assert image["version"] == labels["org.opencontainers.image.version"]
    properties = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert properties["prefect-agent:target"] == target
    assert properties["prefect-agent:prefect.version"] == labels["io.prefect.version"]
    assert bom["metadata"]["timestamp"] == labels["org.opencontainers.image.created"]


def test_the_creation_date_is_the_commits(docker_cli: str, any_image: str) -> None:
    labels = image_labels(docker_cli, any_image)
    commit_time = subprocess.run(
        ["git", "log", "-1", "--format=%ct", labels["org.opencontainers.image.revision"]],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    moment = datetime.datetime.fromtimestamp(int(commit_time), tz=datetime.timezone.utc)
    assert labels["org.opencontainers.image.created"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The offline base is made locally and has no repository digest; a pulled base has one.
    base = labels["org.opencontainers.image.base.name"]
    digests = subprocess.run(
        [docker_cli, "image", "inspect", "--format", "{{json .RepoDigests}}", base],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    expected = json.loads(digests)[0].split("@", 1)[1] if json.loads(digests) else ""
    assert labels["org.opencontainers.image.base.digest"] == expected
