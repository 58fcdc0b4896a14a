"""The image's CycloneDX SBOM, written by the Python of the environment it describes
(standard library only; build.sh sbom runs it).

It lists every distribution installed in that environment (importlib.metadata: what is really
there, not what a lock asked for), the base's Debian packages (dpkg's status file) and conda
packages (``conda-meta``), and describes the image itself (its version, prefect's,
lume-services' when installed, the base). The document is reproducible: sorted, timestamped
with SOURCE_DATE_EPOCH, its serial number derived from its content. (cyclonedx-py cannot be
used: it rejects prefect 1.2.4's own metadata, ``kubernetes (>=9.0.0a1.0)``, as packaging 22+
does. The tests validate the result with cyclonedx-python-lib.)

usage: sbom.py OUTPUT --version V --target T --prefix P [--base-image B]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import re
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional
from urllib.parse import quote

DPKG_STATUS = Path("/var/lib/dpkg/status")
CONDA_META_DIRS = [Path("/opt/conda/conda-meta")]  # the base's; the env's is added from --prefix
PROPERTY = "prefect-agent"
SPEC_VERSION = "1.5"


def python_components(distributions: Iterable) -> List[dict]:
    """Components for installed distributions (importlib.metadata), by normalised name."""
    components = {}
    for distribution in distributions:
        name, version = distribution.metadata["Name"], distribution.version
        if not name:
            continue
        normalised = re.sub(r"[-_.]+", "-", name).lower()
        purl = f"pkg:pypi/{normalised}@{version}"
        component = {"type": "library", "bom-ref": purl, "name": name, "version": version,
                     "purl": purl}  # fmt: skip
        licence = distribution.metadata.get("License-Expression") or ""
        if licence:
            component["licenses"] = [{"expression": licence}]
        components[purl] = component
    return list(components.values())


def dpkg_packages(status: str) -> List[Dict[str, str]]:
    """The installed packages of a dpkg status file, one dict of fields each."""
    packages = []
    for stanza in status.split("\n\n"):
        fields: Dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages.append(fields)
    return packages


def debian_components(status: str, distro: str) -> List[dict]:
    components = []
    for package in dpkg_packages(status):
        name, version, arch = package["Package"], package["Version"], package["Architecture"]
        purl = f"pkg:deb/debian/{name}@{quote(version, safe='')}?arch={arch}"
        if distro:
            purl += f"&distro={distro}"
        component = {"type": "library", "bom-ref": purl, "name": name, "version": version,
                     "purl": purl}  # fmt: skip
        if package.get("Source"):
            source = package["Source"].split(" ")[0]
            component["properties"] = [{"name": f"{PROPERTY}:deb.source", "value": source}]
        components.append(component)
    return components


def conda_components(records: Iterable[dict]) -> List[dict]:
    """Components for conda-meta records (name, version, build, channel, subdir)."""
    components = []
    for record in records:
        channel = (record.get("channel") or "").rstrip("/").rsplit("/", 1)[-1]
        qualifiers = [f"build={record.get('build', '')}", f"subdir={record.get('subdir', '')}"]
        if channel:
            qualifiers.insert(1, f"channel={channel}")
        purl = f"pkg:conda/{record['name']}@{record['version']}?{'&'.join(qualifiers)}"
        components.append({"type": "library", "bom-ref": purl, "name": record["name"],
                           "version": record["version"], "purl": purl})  # fmt: skip
    return components


def read_conda_meta(directories: Iterable[Path]) -> List[dict]:
    records = []
    for directory in directories:
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            records.append(json.loads(path.read_text()))
    return records


def os_release_distro(text: str) -> str:
    """``debian-12`` from /etc/os-release."""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    name = fields.get("ID", "").strip('"')
    version = fields.get("VERSION_ID", "").strip('"')
    return f"{name}-{version}" if name and version else name


def timestamp(source_date_epoch: Optional[str]) -> str:
    seconds = int(source_date_epoch) if source_date_epoch else 0
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assemble(components: List[dict], image: dict, properties: Dict[str, str],
             source_date_epoch: Optional[str]) -> dict:  # fmt: skip
    """The whole document: ``components``, ``image`` described, and what it consists of."""
    # One component per reference: a conda env repeats its base's packages (same purl).
    unique = {component["bom-ref"]: component for component in reversed(components)}
    components = sorted(unique.values(), key=lambda component: component["bom-ref"])
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": timestamp(source_date_epoch),
            "tools": [{"vendor": "prefect-agent", "name": "sbom.py"}],
            "component": image,
            "properties": [
                {"name": f"{PROPERTY}:{name}", "value": value}
                for name, value in sorted(properties.items())
            ],
        },
        "components": components,
        "dependencies": [
            {"ref": image["bom-ref"], "dependsOn": [c["bom-ref"] for c in components]}
        ],
    }
    digest = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).hexdigest()
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, digest)}"
    return bom


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--base-image", default="")
    args = parser.parse_args(argv)

    components = python_components(importlib.metadata.distributions())
    os_release = Path("/etc/os-release")
    distro = os_release_distro(os_release.read_text()) if os_release.exists() else ""
    status = DPKG_STATUS.read_text() if DPKG_STATUS.exists() else ""
    components += debian_components(status, distro)
    components += conda_components(read_conda_meta([*CONDA_META_DIRS, args.prefix / "conda-meta"]))

    properties = {"target": args.target, "base.image": args.base_image}
    lume = args.prefix / "share" / "prefect-agent" / "lume-services.json"
    if lume.exists():
        record = json.loads(lume.read_text())
        properties["lume-services.version"] = record["version"]
        properties["lume-services.requested"] = record["requested"]
    properties["prefect.version"] = importlib.metadata.version("prefect")
    image = {"type": "container", "bom-ref": f"{PROPERTY}@{args.version}",
             "name": PROPERTY, "version": args.version}  # fmt: skip
    bom = assemble(components, image, properties, os.environ.get("SOURCE_DATE_EPOCH"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")
    print(f"sbom.py: {len(bom['components'])} components in {args.output}")


if __name__ == "__main__":
    main()
