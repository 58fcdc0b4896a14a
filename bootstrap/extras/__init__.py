"""Extra packages at start-up: EXTRA_CONDA_PACKAGES, then EXTRA_PIP_PACKAGES, all or nothing.

:func:`install_extras` runs in the image's entrypoint, after the drop to the runtime user
and before the command. Its steps:

1. Parse both values with shell-word rules; reject unknown options and anything that is not
   a requirement / match spec (nothing is ever run through a shell).
2. Fingerprint: a digest of the normalized requests, the installers' identities and the
   index/channel variables. Equal to the one stored in the environment after the last
   successful install? Then nothing runs (a restart of a container costs milliseconds).
3. Plan everything before changing anything: the conda solve (py-rattler) or
   ``--dry-run --json`` (conda CLIs), then ``uv pip install --dry-run``. A bad spec fails
   here, with the installer's message, and the environment is untouched.
4. Open an undo journal (:mod:`bootstrap.extras.journal`), apply conda then pip, store the
   fingerprint, drop the journal. Any failure or stop signal in between rolls the whole
   environment back, conda step included; a kill leaves the journal, and the next start
   of the container rolls back before anything else.

A failure raises :class:`~bootstrap.errors.ExtrasError` (exit 6; 130 when interrupted), so the
container stops before its command (the agent) ever starts with packages missing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional

from bootstrap.errors import ExtrasError
from bootstrap.extras import journal, proc
from bootstrap.extras.plan import (
    APT_VAR,
    CA_VAR,
    CONDA_VAR,
    FINGERPRINT_ENV,
    PIP_VAR,
    ca_environment,
    fingerprint,
    is_pem,
    parse_conda,
    parse_pip,
    url_secrets,
)
from bootstrap.log import logger, register_secrets

PREFIX_VAR = "PREFECT_ENV"
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

__all__ = ["ExtrasInterrupted", "install_extras"]


class ExtrasInterrupted(ExtrasError):
    """A stop signal arrived while installing; the environment was rolled back."""

    exit_code = 130


def install_extras(environ: Mapping[str, str], prefix: Optional[Path] = None) -> None:
    """Install EXTRA_CONDA_PACKAGES and EXTRA_PIP_PACKAGES into the runtime environment
    (``$PREFECT_ENV``, else this interpreter's prefix), or raise ExtrasError."""
    started = time.monotonic()
    conda_value = (environ.get(CONDA_VAR) or "").strip()
    pip_value = (environ.get(PIP_VAR) or "").strip()
    apt_value = (environ.get(APT_VAR) or "").strip()
    prefix = Path(prefix or environ.get(PREFIX_VAR) or sys.prefix)
    if not (conda_value or pip_value or apt_value) and not journal.pending(prefix):
        return
    if apt_value:
        raise ExtrasError(
            f"{APT_VAR} is not supported: the container runs as a non-root user and Debian "
            "packages cannot be rolled back; build an image FROM this one with the packages "
            "(or use EXTRA_CONDA_PACKAGES)"
        )
    if not prefix.is_dir():
        raise ExtrasError(f"the runtime environment {prefix} ({PREFIX_VAR}) does not exist")
    register_secrets(
        url_secrets([conda_value, pip_value, *(environ.get(n, "") for n in FINGERPRINT_ENV)])
    )
    conda_request = parse_conda(conda_value) if conda_value else None
    pip_request = parse_pip(pip_value) if pip_value else None
    try:
        with proc.signals_raise(), journal.locked(prefix):
            _recover(prefix)
            if conda_request is None and pip_request is None:
                return
            with ca_bundle(environ) as ca_env:
                env = {**environ, **ca_env}
                _install(prefix, environ, env, conda_request, pip_request, started)
    except proc.Interrupted as exc:
        raise ExtrasInterrupted(
            f"stopped by {exc.name} while preparing extra packages; nothing was changed"
        ) from None
    except PermissionError as exc:
        raise ExtrasError(
            f"cannot install extra packages into {prefix} as uid {os.getuid()}: "
            f"{exc.strerror} ({exc.filename}); the runtime user must own the environment"
        ) from None


def _recover(prefix: Path) -> None:
    journal.clean_leftovers(prefix)
    if not journal.pending(prefix):
        return
    logger.warning("An earlier install of extra packages did not finish: rolling it back")
    with proc.signals_deferred():
        try:
            report = journal.Journal.load(prefix).rollback()
        except (OSError, ValueError) as exc:
            raise ExtrasError(
                f"cannot roll back the unfinished install of extra packages in {prefix} "
                f"({exc}); the environment may be inconsistent: recreate the container"
            ) from None
    if not report.complete:
        raise ExtrasError(f"rollback of an unfinished install incomplete: {report.describe()}")
    logger.info("Rolled back: %s", report.describe())


def _install(prefix, environ, env, conda_request, pip_request, started: float) -> None:
    from bootstrap.extras.conda import choose_conda_installer, describe_installer
    from bootstrap.extras.environment import inspect_env, python_of
    from bootstrap.extras.pip import choose_pip_installer

    python = python_of(prefix)
    conda = choose_conda_installer(environ, prefix, env, sys.executable) if conda_request else None
    pip = choose_pip_installer(environ, prefix, python, env) if pip_request else None
    digest = fingerprint(
        conda_request,
        conda.identity if conda else "",
        pip_request,
        pip.identity if pip else "",
        environ,
        proc.executable_identity(str(python)),
    )
    if journal.read_fingerprint(prefix) == digest:
        logger.info(
            "Extra packages already installed (fingerprint %s, checked in %.3f s): "
            "installers skipped",
            digest[:12],
            time.monotonic() - started,
        )
        return

    what: List[str] = []
    if conda_request:
        what.append(f"conda [{conda_request.describe()}] with {describe_installer(conda)}")
    if pip_request:
        what.append(f"pip [{pip_request.describe()}] with {pip.version()}")
    logger.info("Installing extra packages into %s: %s", prefix, "; ".join(what))

    target = inspect_env(prefix, python)
    # The journal opens before planning: planners touch the environment too (uv's .lock).
    transaction = journal.Journal.begin(prefix)
    planning = True
    try:
        conda_plan = conda.plan(conda_request, target) if conda else None
        if conda_plan is not None:
            logger.info(
                "Conda plan by %s in %.2f s: %s",
                conda.name,
                conda_plan.seconds,
                conda_plan.changes.describe(),
            )
        pip_plan = pip.plan(pip_request, target) if pip else None
        if pip_plan is not None:
            logger.info(
                "Pip plan by %s in %.2f s: %s",
                pip.name,
                pip_plan.seconds,
                pip_plan.changes.describe(),
            )
        todo_conda = conda_plan is not None and not conda_plan.changes.empty
        todo_pip = pip_plan is not None and not pip_plan.changes.empty
        details = {
            "conda": list(conda_request.specs) if conda_request else [],
            "pip": list(pip_request.requirements) if pip_request else [],
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if not todo_conda and not todo_pip:
            if conda:
                conda.close()
            transaction.rollback()  # only what planning left (lock files)
            journal.write_fingerprint(prefix, digest, details)
            logger.info("Extra packages already satisfied: nothing to install")
            return
        for plan in (conda_plan, pip_plan):
            if plan is not None:
                transaction.back_up(plan.backups)
        planning = False
        if conda:
            if todo_conda:
                seconds = conda.apply(conda_plan)
                logger.info("Installed conda packages with %s in %.2f s", conda.name, seconds)
            else:
                conda.close()
        if todo_pip:
            seconds = pip.apply(pip_plan)
            logger.info("Installed pip packages with %s in %.2f s", pip.name, seconds)
        journal.write_fingerprint(prefix, digest, details)
        commit_seconds = transaction.commit()
    except BaseException as exc:
        raise _roll_back(transaction, conda, exc, planning) from None
    logger.info(
        "Extra packages installed in %.2f s (undo journal: %.2f s to open, %.2f s to close)",
        time.monotonic() - started,
        transaction.begin_seconds,
        commit_seconds,
    )


def _roll_back(
    transaction: journal.Journal, conda, exc: BaseException, planning: bool
) -> ExtrasError:
    """Undo the transaction (signals deferred); return the error to raise."""
    with proc.signals_deferred() as received:
        if conda is not None:
            conda.close(force=True)
        if isinstance(exc, proc.Interrupted):
            logger.warning("Stopped by %s: rolling the environment back", exc.name)
        elif not planning:
            logger.warning("Installing extra packages failed: rolling the environment back")
        report = transaction.rollback()
    if not report.complete:
        outcome = f"rollback INCOMPLETE: {report.describe()}"
    elif planning:
        outcome = "nothing was installed"
    else:
        outcome = f"the environment was rolled back ({report.describe()})"
    if isinstance(exc, proc.Interrupted) or received:
        name = exc.name if isinstance(exc, proc.Interrupted) else "a signal"
        return ExtrasInterrupted(f"stopped by {name} while installing extra packages; {outcome}")
    if isinstance(exc, ExtrasError):
        return ExtrasError(f"{exc}\n({outcome})" if planning else f"{exc}\n{outcome}")
    logger.debug("Unexpected error while installing extra packages", exc_info=exc)
    return ExtrasError(
        f"installing extra packages failed unexpectedly ({type(exc).__name__}: {exc}); {outcome}"
    )


@contextlib.contextmanager
def ca_bundle(environ: Mapping[str, str]) -> Iterator[Dict[str, str]]:
    """EXTRA_CA_CERT (a PEM file, or PEM text): a temporary bundle of the system CAs plus it,
    exported to the installer processes only (SSL_CERT_FILE, PIP_CERT, ...)."""
    value = (environ.get(CA_VAR) or "").strip()
    if not value:
        yield {}
        return
    if is_pem(value):
        extra = value
    else:
        try:
            extra = Path(value).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExtrasError(f"{CA_VAR}={value!r}: cannot read it ({exc})") from None
        if not is_pem(extra):
            raise ExtrasError(f"{CA_VAR}={value!r} holds no PEM certificate")
    system = ""
    for candidate in SYSTEM_CA_BUNDLES:
        with contextlib.suppress(OSError):
            system = Path(candidate).read_text()
            break
    if not system:
        with contextlib.suppress(ImportError, OSError):
            import certifi

            system = Path(certifi.where()).read_text()
    handle, path = tempfile.mkstemp(prefix="extras-ca-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as bundle:
            bundle.write(system.rstrip("\n") + "\n" + extra.strip() + "\n")
        yield ca_environment(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
