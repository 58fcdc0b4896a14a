"""The images' bill of materials and build metadata: a valid CycloneDX document that lists
every locked package at its locked version and the base's Debian packages, taken out with
`make sbom`; labels that do not change between rebuilds of one commit."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
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


def load_sbom_script():
    spec = importlib.util.spec_from_file_location(
        "sbom_script", REPO / "prefect-agent-docker" / "sbom.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DPKG_STATUS = """\
Package: tini
Status: install ok installed
Architecture: amd64
Version: 0.19.0-1+b3
Description: tiny init
 continuation: not a field

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""


def test_conda_packages_of_base_and_env_appear_once_and_the_document_validates() -> None:
    """On a conda base the env repeats base packages (same purl): listed once, valid."""
    sbom = load_sbom_script()
    record = {
        "name": "_libgcc_mutex",
        "version": "0.1",
        "build": "conda_forge",
        "channel": "https://conda.anaconda.org/conda-forge",
        "subdir": "linux-64",
    }
    components = sbom.conda_components([record, dict(record)])
    components += sbom.debian_components(DPKG_STATUS, "debian-12")
    image = {"type": "container", "bom-ref": "prefect-agent@1", "name": "prefect-agent",
             "version": "1"}  # fmt: skip
    document = sbom.assemble(components, image, {"target": "prod"}, "0")
    refs = [component["bom-ref"] for component in document["components"]]
    assert refs == [
        "pkg:conda/_libgcc_mutex@0.1?build=conda_forge&channel=conda-forge&subdir=linux-64",
        "pkg:deb/debian/tini@0.19.0-1%2Bb3?arch=amd64&distro=debian-12",
    ]
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    assert errors is None, errors
    assert document["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
    assert sbom.assemble(components, image, {"target": "prod"}, "0") == document  # stable


def test_the_creation_date_is_the_commits(docker_cli: str, any_image: str) -> None:
    labels = image_labels(docker_cli, any_image)
    commit_time = os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
        ["git", "log", "-1", "--format=%ct", labels["org.opencontainers.image.revision"]],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    moment = datetime.datetime.fromtimestamp(int(commit_time), tz=datetime.timezone.utc)
    assert labels["org.opencontainers.image.created"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The base's own digest (scripts/base-digest.sh, tested below); none for the offline
    # base, which is made locally.
    base = labels["org.opencontainers.image.base.name"]
    digest = subprocess.run(
        [str(REPO / "scripts" / "base-digest.sh"), base], env={**os.environ, "DOCKER": docker_cli},
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert labels["org.opencontainers.image.base.digest"] == digest
    if base.startswith("prefect-agent-base:"):
        assert digest == ""


@pytest.mark.parametrize(
    ("image", "digests", "expected"),
    [
        ("condaforge/miniforge3:26.3.2-3", ["condaforge/miniforge3@sha256:aa"], "sha256:aa"),
        # also known under another name: only its own repository's digest counts
        ("condaforge/miniforge3:26.3.2-3",
         ["mirror.example:5000/miniforge@sha256:bb", "condaforge/miniforge3@sha256:cc"],
         "sha256:cc"),
        ("debian:bookworm", ["debian@sha256:dd"], "sha256:dd"),
        ("registry.example:5000/base:1@sha256:ee", ["registry.example:5000/base@sha256:ff"],
         "sha256:ee"),  # pinned: the pin
        ("docker.io/debian:bookworm", ["debian@sha256:11"], "sha256:11"),
        ("docker.io/library/debian", ["docker.io/library/debian@sha256:22"], "sha256:22"),
        ("prefect-agent-base:bookworm", [], ""),  # built locally: none
    ],
)  # fmt: skip
def test_the_base_digest_is_that_of_the_bases_own_repository(
    tmp_path: Path, image: str, digests: list, expected: str
) -> None:
    """What the registry reports cannot be produced here (no registry): a stand-in docker
    answers the one inspect call scripts/base-digest.sh makes."""
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(digests or ["''"]) + "\n")
    docker.chmod(0o755)
    found = subprocess.run(
        [str(REPO / "scripts" / "base-digest.sh"), image],
        env={"DOCKER": str(docker), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert found.stdout.strip() == expected
