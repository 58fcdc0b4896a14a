"""EXTRA_CA_CERT (a TLS-intercepting proxy's CA, a private index's): for the installers, a
temporary bundle of the system CAs plus the extra certificate, deleted afterwards; for the
command the entrypoint starts (the agent, a flow run), the same bundle in the run directory
for as long as it runs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional

from bootstrap.extras.variables import CA_VAR
from bootstrap.util.errors import ExtrasError

BUNDLE_PREFIX = "extras-ca-"
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def is_pem(value: str) -> bool:
    return "-----BEGIN CERTIFICATE-----" in value


def ca_environment(bundle: str) -> Dict[str, str]:
    """Variables that make every installer trust ``bundle`` (a PEM file)."""
    return {
        "SSL_CERT_FILE": bundle,  # uv, py-rattler, OpenSSL
        "PIP_CERT": bundle,  # pip
        "REQUESTS_CA_BUNDLE": bundle,  # requests (conda)
        "CONDA_SSL_VERIFY": bundle,  # conda, mamba
        "MAMBA_SSL_VERIFY": bundle,  # micromamba
    }


def read_extra_ca(value: str) -> str:
    """The PEM text of EXTRA_CA_CERT: the value itself, or the file it names."""
    if is_pem(value):
        return value
    try:
        text = Path(value).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtrasError(f"{CA_VAR}={value!r}: cannot read it ({exc})") from None
    if not is_pem(text):
        raise ExtrasError(f"{CA_VAR}={value!r} holds no PEM certificate")
    return text


def system_bundle() -> str:
    for candidate in SYSTEM_CA_BUNDLES:
        with contextlib.suppress(OSError):
            return Path(candidate).read_text()
    with contextlib.suppress(ImportError, OSError):
        import certifi

        return Path(certifi.where()).read_text()
    return ""


@contextlib.contextmanager
def ca_bundle(value: str) -> Iterator[Dict[str, str]]:
    """For EXTRA_CA_CERT ``value`` (a PEM file, or PEM text): the variables pointing the
    installers at a temporary bundle of the system CAs plus it; nothing if it is empty."""
    if not value:
        yield {}
        return
    extra = read_extra_ca(value)
    # the pid in the name: a leftover is one whose process is gone (remove_leftover_bundles)
    handle, path = tempfile.mkstemp(prefix=f"{BUNDLE_PREFIX}{os.getpid()}-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as bundle:
            bundle.write(system_bundle().rstrip("\n") + "\n" + extra.strip() + "\n")
        yield ca_environment(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


COMMAND_BUNDLE = "ca-bundle.pem"
# What the command's TLS clients read: OpenSSL (urllib, httpx), requests (prefect, docker).
COMMAND_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def command_environment(value: str, directory: Path, environ: Mapping[str, str]) -> Dict[str, str]:
    """For EXTRA_CA_CERT ``value``: a bundle of the system CAs plus it, written to
    ``directory``, and the variables pointing the command's TLS clients at it (those the
    operator did not set). Nothing for an empty value."""
    if not value:
        return {}
    wanted = [name for name in COMMAND_CA_VARIABLES if not environ.get(name)]
    if not wanted:
        return {}
    extra = read_extra_ca(value)
    path = directory / COMMAND_BUNDLE
    fd, temporary = tempfile.mkstemp(prefix=f".{COMMAND_BUNDLE}-", dir=directory)
    with os.fdopen(fd, "w") as bundle:
        bundle.write(system_bundle().rstrip("\n") + "\n" + extra.strip() + "\n")
    os.replace(temporary, path)
    return {name: str(path) for name in wanted}


def bundle_owner(name: str) -> Optional[int]:
    """The pid of the install a bundle's file name says made it (None: not said)."""
    pid, dash, _ = name[len(BUNDLE_PREFIX) :].partition("-")
    return int(pid) if dash and pid.isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_leftover_bundles() -> None:
    """Delete this user's bundles left by an install that was killed (they are deleted as soon
    as an install ends otherwise), not those of an install still running beside this one (a
    Local agent's flow runs share the container's /tmp): its installers are reading them."""
    for path in Path(tempfile.gettempdir()).glob(f"{BUNDLE_PREFIX}*.pem"):
        owner = bundle_owner(path.name)
        if owner is not None and owner != os.getpid() and process_alive(owner):
            continue
        with contextlib.suppress(OSError):
            if path.lstat().st_uid == os.getuid():
                path.unlink()
