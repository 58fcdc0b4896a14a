"""Extra packages asked for (or an unfinished install to roll back): the checks, the lock,
the recovery, then the transaction (:mod:`~bootstrap.extras.transaction`). Loaded only when
there is something to do (:func:`bootstrap.extras.install_extras`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from bootstrap.extras import fingerprint, journal, proc
from bootstrap.extras.conda_request import parse_conda
from bootstrap.extras.overlay import Overlay
from bootstrap.extras.pip_request import parse_pip
from bootstrap.extras.tls import ca_bundle
from bootstrap.extras.transaction import ExtrasInterrupted, install
from bootstrap.extras.variables import APT_VAR, PREFIX_VAR, ExtrasEnv
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger, register_secrets
from bootstrap.util.secrets import url_credentials


def install_requested(
    env: ExtrasEnv, environ: Mapping[str, str], started: float
) -> Optional[Overlay]:
    """Install what ``env`` asks for, all or nothing, after rolling back an install a kill
    interrupted; the overlay the command must find first, or None."""
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
