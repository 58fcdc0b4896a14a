"""EXTRA_PIP_PACKAGES when the runtime environment cannot be written (a read-only root
filesystem, Kubernetes' ``readOnlyRootFilesystem``): installed beside it, into an overlay
directory the command finds first on its ``PYTHONPATH``.

Everything installed stays as it is (it cannot change): uv resolves the request with every
installed distribution pinned (``uv pip compile``), and what is new is installed into a
staging directory (``uv pip install --target --no-deps``), checked (the core still imports
with the overlay in front), then moved into place. Nothing to roll back: a failed or
interrupted install leaves only its staging directory, removed at the next start.
Conda packages need the environment itself: refused here, with what to do instead. As on
any ``PYTHONPATH`` directory, ``.pth`` files of packages in the overlay are not run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from bootstrap.extras import fingerprint as fingerprints
from bootstrap.extras import proc
from bootstrap.extras.check import smoke_modules
from bootstrap.extras.core import Core
from bootstrap.extras.environment import TargetEnv, canonical_name
from bootstrap.extras.pip_request import PipRequest, pip_env_options, requirements_file, uv_options
from bootstrap.extras.plan import installer_message
from bootstrap.extras.variables import CONDA_VAR, PIP_VAR
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger

OVERLAY_VAR = "PREFECT_EXTRAS_DIR"
DEFAULT_OVERLAY = "/var/lib/prefect-agent/extras"
SITE = "site"  # <overlay>/site: the packages; <overlay>/site/bin: their commands


@dataclass(frozen=True)
class Overlay:
    """Where a command finds the extra packages (added to PYTHONPATH and PATH)."""

    site: Path

    def environment(self, environ: Mapping[str, str]) -> Dict[str, str]:
        python_path = [str(self.site), *filter(None, [environ.get("PYTHONPATH")])]
        path = [str(self.site / "bin"), *filter(None, [environ.get("PATH")])]
        return {"PYTHONPATH": os.pathsep.join(python_path), "PATH": os.pathsep.join(path)}


def writable(prefix: Path, target: TargetEnv) -> bool:
    """Can extras go into the environment itself (its prefix and its site-packages)?"""
    return os.access(prefix, os.W_OK) and os.access(target.purelib, os.W_OK)


def overlay_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(OVERLAY_VAR) or DEFAULT_OVERLAY)


def existing(environ: Mapping[str, str]) -> Optional[Overlay]:
    site = overlay_dir(environ) / SITE
    return Overlay(site) if site.is_dir() else None


def install(
    prefix: Path,
    target: TargetEnv,
    core: Core,
    environ: Mapping[str, str],
    installer_env: Mapping[str, str],
    conda_request,
    pip_request: Optional[PipRequest],
    digest: str,
) -> Optional[Overlay]:
    """Install ``pip_request`` into the overlay (or find it there already); None if nothing
    was asked for."""
    if conda_request is not None:
        raise ExtrasError(
            f"{CONDA_VAR} needs to write the runtime environment {prefix}, which is read-only "
            "here: start the container without --read-only (Kubernetes: render the manifests "
            "with kubernetes_agent_read_only_root: false), or build an image FROM this one "
            "with the packages"
        )
    if pip_request is None:
        return None
    pip_request = pip_env_options(pip_request, installer_env)  # PIP_INDEX_URL, ... for uv
    root = writable_overlay(prefix, environ)
    site = root / SITE
    if site.is_dir() and fingerprints.read(root) == digest:
        logger.info("Extra packages already in the overlay %s: installers skipped", site)
        return Overlay(site)
    uv = shutil.which("uv", path=installer_env.get("PATH")) or str(prefix / "bin" / "uv")
    installer_env = {**installer_env, **cache_environment(installer_env)}
    started = time.monotonic()
    logger.info(
        "Installing extra packages into the overlay %s (%s is read-only): pip [%s]",
        site,
        prefix,
        pip_request.describe(),
    )
    new = _resolve(uv, target, pip_request, installer_env)
    logger.info(
        "Pip plan by uv (everything installed held): %s",
        ", ".join(new) if new else "nothing new to install",
    )
    _stage_and_swap(uv, target, core, pip_request, new, installer_env, root, digest)
    logger.info("Extra packages installed into the overlay in %.2f s", time.monotonic() - started)
    return Overlay(site)


def writable_overlay(prefix: Path, environ: Mapping[str, str]) -> Path:
    """The overlay directory, created if its parent is a mount; refuse one not writable."""
    root = overlay_dir(environ)
    with contextlib.suppress(OSError):  # an empty mount at its parent (an emptyDir) will do
        root.mkdir(exist_ok=True)
    if not (root.is_dir() and os.access(root, os.W_OK)):
        raise ExtrasError(
            f"{PIP_VAR}: the runtime environment {prefix} is read-only, and the overlay "
            f"directory for extra packages, {root} ({OVERLAY_VAR}), is not writable: mount "
            f"a writable directory there (docker run --tmpfs {root.parent}:exec, "
            "or a volume; Kubernetes: an emptyDir)"
        )
    for leftover in root.glob(".staging-*"):  # an install that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    return root


def _stage_and_swap(
    uv: str,
    target: TargetEnv,
    core: Core,
    pip_request: PipRequest,
    new: List[str],
    installer_env: Mapping[str, str],
    root: Path,
    digest: str,
) -> None:
    """Install ``new`` into a staging directory, check it, then swap it in (signals held)."""
    site = root / SITE
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        if new:
            argv = [uv, "pip", "install", "--python", str(target.python), "--no-deps"]
            argv += ["--target", str(staging / SITE), *uv_options(pip_request, _NOT_FOR_INSTALL)]
            result = proc.run(
                [*argv, *new], installer_env, progress="Installing the pip step (uv, overlay)"
            )
            if result.returncode != 0:
                raise ExtrasError(
                    f"{PIP_VAR}: uv failed to install {pip_request.describe()}:\n"
                    f"{installer_message(result.output)}\n(nothing was installed)"
                )
        else:
            (staging / SITE).mkdir()
        _check(target, core, staging / SITE, installer_env)
        with proc.signals_deferred():
            if site.exists():
                shutil.rmtree(site)
            os.replace(staging / SITE, site)
            fingerprints.write(root, digest, {"pip": list(new)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cache_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """uv without its cache when the cache directory cannot be written (a read-only root
    without a cache mount): downloads then go to the temporary directory."""
    home = env.get("HOME") or str(Path.home())
    cache = Path(
        env.get("UV_CACHE_DIR") or Path(env.get("XDG_CACHE_HOME") or f"{home}/.cache", "uv")
    )
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
    if cache.is_dir() and os.access(cache, os.W_OK):
        return {}
    logger.info("The cache %s is not writable: extra packages are downloaded uncached", cache)
    return {"UV_NO_CACHE": "1"}


# Options of the request that mean nothing to an install of exact, resolved requirements.
_NOT_FOR_INSTALL = ("requirement", "editable", "constraint", "upgrade", "force-reinstall")


def _resolve(uv: str, target: TargetEnv, request: PipRequest, env: Mapping[str, str]) -> List[str]:
    """The request resolved with every installed distribution held: what is new (pinned)."""
    from packaging.requirements import InvalidRequirement, Requirement

    with tempfile.TemporaryDirectory(prefix="extras-overlay-") as work:
        wanted = Path(work, "requested.in")
        wanted.write_text(requirements_file(request))
        held = Path(work, "installed.txt")
        held.write_text(
            "".join(f"{target.names[key]}=={version}\n" for key, (version, _) in sorted(
                target.distributions.items()))
        )  # fmt: skip
        argv = [uv, "pip", "compile", str(wanted), "--python", str(target.python)]
        argv += ["--constraint", str(held), "--no-header", "--no-annotate", "--quiet"]
        argv += uv_options(request, ("requirement", "editable", "upgrade", "force-reinstall"))
        result = proc.run(argv, env, progress="Planning the pip step (uv, overlay)")
    if result.returncode != 0:
        raise ExtrasError(
            f"{PIP_VAR}: uv cannot install {request.describe()} beside the read-only "
            f"environment (what is installed there cannot change):\n"
            f"{installer_message(result.output)}\n(nothing was installed)"
        )
    new: List[str] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            name = canonical_name(Requirement(line).name)
        except InvalidRequirement:
            continue
        if name not in target.distributions:
            new.append(line)
    return new


def _check(target: TargetEnv, core: Core, site: Path, env: Mapping[str, str]) -> None:
    """The core still imports with the overlay in front of it."""
    modules = smoke_modules(core)
    if not modules:
        return
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    check_env = {**env, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    result = proc.run([str(target.python), "-c", code, *modules], check_env, timeout=300)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise ExtrasError(
            f"the extra packages broke the environment: the core no longer imports with them "
            f"({', '.join(modules)}):\n" + "\n".join(lines[-12:]) + "\n(nothing was installed)"
        )
