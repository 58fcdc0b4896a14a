"""renovate.json: accepted by Renovate's own config validator (offline), and its rules reach
what they are meant to update (the Dockerfile's base image, every lock)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.helpers.host_tools import missing_tool

REPO = Path(__file__).resolve().parents[1]
CONFIG = json.loads((REPO / "renovate.json").read_text())
VALIDATOR = REPO / ".tools" / "renovate" / "node_modules" / ".bin" / "renovate-config-validator"


def validator() -> Path:
    if not VALIDATOR.exists():
        missing_tool("Renovate's config validator is not installed (make tools)")
    return VALIDATOR


def javascript_regex(pattern: str) -> re.Pattern:
    """A Renovate pattern (JavaScript syntax, /.../ for file patterns) in Python's."""
    if pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    return re.compile(pattern.replace("(?<", "(?P<"))


def test_renovates_validator_accepts_the_config_and_rejects_a_bad_one(tmp_path: Path) -> None:
    good = subprocess.run(
        [str(validator()), str(REPO / "renovate.json")], capture_output=True, text=True, timeout=120
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = tmp_path / "renovate.json"
    bad.write_text(json.dumps({**CONFIG, "schedul": ["weekly"]}))
    rejected = subprocess.run([str(validator()), str(bad)], capture_output=True, text=True)
    assert rejected.returncode != 0
    assert "schedul" in rejected.stdout + rejected.stderr


def test_the_base_image_pin_is_found_in_the_dockerfile() -> None:
    (manager,) = CONFIG["customManagers"]
    (file_pattern,) = manager["managerFilePatterns"]
    assert javascript_regex(file_pattern).search("prefect-agent-docker/Dockerfile")
    (match_string,) = manager["matchStrings"]
    dockerfile = (REPO / "prefect-agent-docker" / "Dockerfile").read_text()
    found = javascript_regex(match_string).search(dockerfile)
    assert found is not None
    pinned = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M).group(1)
    assert f"{found['depName']}:{found['currentValue']}" == pinned.split("@")[0]
    digest = "sha256:" + "a" * 64  # a pin by digest is found too
    with_digest = javascript_regex(match_string).search(f"ARG BASE_IMAGE={pinned}@{digest}")
    assert with_digest["currentDigest"] == digest


def test_every_lock_is_managed_and_regenerated_by_make_lock() -> None:
    (pattern,) = CONFIG["pip_requirements"]["managerFilePatterns"]
    locks = sorted((REPO / "prefect-agent-docker").glob("requirements*.lock"))
    assert len(locks) >= 3
    for lock in locks:
        assert javascript_regex(pattern).search(f"prefect-agent-docker/{lock.name}"), lock.name
    grouped = [rule for rule in CONFIG["packageRules"] if "postUpgradeTasks" in rule]
    assert grouped[0]["postUpgradeTasks"]["commands"] == ["make lock"]
    makefile = (REPO / "Makefile").read_text()
    for lock in locks:
        assert f"--output-file prefect-agent-docker/{lock.name}" in makefile
