"""Extra packages at start-up: EXTRA_CONDA_PACKAGES, then EXTRA_PIP_PACKAGES, all or nothing.

:func:`install_extras` runs in the image's entrypoint, after the drop to the runtime user
and before the command. Its steps:

1. Parse both values with shell-word rules; reject unknown options and anything that is not
   a requirement / match spec (nothing is ever run through a shell).
2. Fingerprint (:mod:`~bootstrap.extras.fingerprint`): equal to the one stored after the
   last successful install? Then nothing runs (a restart of a container costs milliseconds).
3. Plan everything before changing anything: the conda step (:mod:`~bootstrap.extras.conda`,
   :mod:`~bootstrap.extras.rattler`), then the pip step (:mod:`~bootstrap.extras.pip`). A
   bad spec fails here, with the installer's message, and the environment is untouched.
4. Open an undo journal (:mod:`~bootstrap.extras.journal`), apply conda then pip, store the
   fingerprint, drop the journal. Any failure or stop signal in between rolls the whole
   environment back, conda step included; a kill leaves the journal, and the next start
   of the container rolls back before anything else.

The transaction itself reads top-down in :mod:`~bootstrap.extras.transaction`.

A failure raises :class:`~bootstrap.util.errors.ExtrasError` (exit 6; 130 when interrupted), so the
container stops before its command (the agent) ever starts with packages missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, Optional

from bootstrap.extras import fingerprint, journal, proc
from bootstrap.extras.conda_request import parse_conda
from bootstrap.extras.overlay import Overlay
from bootstrap.extras.pip_request import parse_pip
from bootstrap.extras.tls import ca_bundle, remove_leftover_bundles
from bootstrap.extras.transaction import ExtrasInterrupted, install
from bootstrap.extras.variables import APT_VAR, PREFIX_VAR, ExtrasEnv
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger, register_secrets
from bootstrap.util.secrets import url_credentials

__all__ = ["ExtrasInterrupted", "install_extras"]


def install_extras(environ: Mapping[str, str], prefix: Optional[Path] = None) -> Optional[Overlay]:
    """Install EXTRA_CONDA_PACKAGES and EXTRA_PIP_PACKAGES into the runtime environment
    (``$PREFECT_ENV``, else this interpreter's prefix), or raise ExtrasError.

    Returns the overlay the command must find first on its PYTHONPATH when the environment
    is read-only (:mod:`bootstrap.extras.overlay`), else None."""
    started = time.monotonic()
    env = ExtrasEnv.read(environ, prefix)
    remove_leftover_bundles()  # a docker kill mid-install leaves one behind
    if not env.requested and not journal.pending(env.prefix):
        return None
    if env.apt:
        raise ExtrasError(
            f"{APT_VAR} is not supported: the container runs as a non-root user and Debian "
            "packages cannot be rolled back; build an image FROM this one with the packages "
            "(or use EXTRA_CONDA_PACKAGES)"
        )
    if not env.prefix.is_dir():
        raise ExtrasError(f"the runtime environment {env.prefix} ({PREFIX_VAR}) does not exist")
    register_secrets(
        url_credentials(
            [env.conda, env.pip, *(environ.get(n, "") for n in fingerprint.INDEX_VARIABLES)]
        )
    )
    conda_request = parse_conda(env.conda) if env.conda else None
    pip_request = parse_pip(env.pip) if env.pip else None
    try:
        with proc.signals_raise(), journal.locked(env.prefix):
            recover(env.prefix)
            if conda_request is None and pip_request is None:
                return None
            with ca_bundle(env.ca_cert) as ca_env:
                return install(env, {**environ, **ca_env}, conda_request, pip_request, started)
    except proc.Interrupted as exc:
        raise ExtrasInterrupted(
            f"stopped by {exc.name} while preparing extra packages; nothing was changed"
        ) from None
    except PermissionError as exc:
        raise ExtrasError(
            f"cannot install extra packages into {env.prefix} as uid {os.getuid()}: "
            f"{exc.strerror} ({exc.filename}); the runtime user must own the environment"
        ) from None


def recover(prefix: Path) -> None:
    """Roll back an install a kill interrupted (its journal is still there)."""
    journal.clean_leftovers(prefix)
    if not journal.pending(prefix):
        return
    logger.warning("An earlier install of extra packages did not finish: rolling it back")
    with proc.signals_deferred():
        try:
            fingerprint.forget(prefix)
            report = journal.Journal.load(prefix).rollback()
        except (OSError, ValueError) as exc:
            raise ExtrasError(
                f"cannot roll back the unfinished install of extra packages in {prefix} "
                f"({exc}); the environment may be inconsistent: recreate the container"
            ) from None
    if not report.complete:
        raise ExtrasError(f"rollback of an unfinished install incomplete: {report.describe()}")
    logger.info("Rolled back: %s", report.describe())
