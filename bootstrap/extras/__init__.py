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

A failure raises :class:`~bootstrap.errors.ExtrasError` (exit 6; 130 when interrupted), so the
container stops before its command (the agent) ever starts with packages missing.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional

from bootstrap.errors import ExtrasError
from bootstrap.extras import fingerprint, journal, overlay, proc
from bootstrap.extras.core import (
    ALLOW_CORE_CHANGES_VAR,
    CoreChangeError,
    allow_core_changes,
    core_of,
)
from bootstrap.extras.overlay import Overlay
from bootstrap.extras.plan import Installer, InstallPlan
from bootstrap.extras.variables import APT_VAR, CONDA_VAR, PIP_VAR, PREFIX_VAR, ExtrasEnv
from bootstrap.log import logger, register_secrets
from bootstrap.secrets import url_credentials, without_credentials

__all__ = ["ExtrasInterrupted", "install_extras"]


class ExtrasInterrupted(ExtrasError):
    """A stop signal arrived while installing; the environment was rolled back."""

    exit_code = 130


@dataclass
class Step:
    """One installer with its request (the conda step, then the pip step)."""

    installer: Installer
    request: Any  # the installer's own request type
    plan: Optional[InstallPlan] = None

    @property
    def todo(self) -> bool:
        return self.plan is not None and not self.plan.changes.empty


def install_extras(environ: Mapping[str, str], prefix: Optional[Path] = None) -> Optional[Overlay]:
    """Install EXTRA_CONDA_PACKAGES and EXTRA_PIP_PACKAGES into the runtime environment
    (``$PREFECT_ENV``, else this interpreter's prefix), or raise ExtrasError.

    Returns the overlay the command must find first on its PYTHONPATH when the environment
    is read-only (:mod:`bootstrap.extras.overlay`), else None."""
    started = time.monotonic()
    env = ExtrasEnv.read(environ, prefix)
    from bootstrap.extras.tls import remove_leftover_bundles

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
    from bootstrap.extras.conda import parse_conda
    from bootstrap.extras.pip import parse_pip

    conda_request = parse_conda(env.conda) if env.conda else None
    pip_request = parse_pip(env.pip) if env.pip else None
    try:
        with proc.signals_raise(), journal.locked(env.prefix):
            _recover(env.prefix)
            if conda_request is None and pip_request is None:
                return None
            from bootstrap.extras.tls import ca_bundle

            with ca_bundle(env.ca_cert) as ca_env:
                return _install(env, {**environ, **ca_env}, conda_request, pip_request, started)
    except proc.Interrupted as exc:
        raise ExtrasInterrupted(
            f"stopped by {exc.name} while preparing extra packages; nothing was changed"
        ) from None
    except PermissionError as exc:
        raise ExtrasError(
            f"cannot install extra packages into {env.prefix} as uid {os.getuid()}: "
            f"{exc.strerror} ({exc.filename}); the runtime user must own the environment"
        ) from None


def _recover(prefix: Path) -> None:
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


def _steps(env: ExtrasEnv, installer_env: Mapping[str, str], conda_request, pip_request):
    from bootstrap.extras.conda import choose_conda_installer
    from bootstrap.extras.environment import python_of
    from bootstrap.extras.pip import choose_pip_installer

    steps: List[Step] = []
    if conda_request is not None:
        conda = choose_conda_installer(env.environ, env.prefix, dict(installer_env), sys.executable)
        steps.append(Step(conda, conda_request))
    if pip_request is not None:
        python = python_of(env.prefix)
        pip = choose_pip_installer(env.environ, env.prefix, python, dict(installer_env))
        steps.append(Step(pip, pip_request))
    return steps


def _install(
    env: ExtrasEnv, installer_env, conda_request, pip_request, started: float
) -> Optional[Overlay]:
    from bootstrap.extras.environment import inspect_env, python_of

    prefix = env.prefix
    target = inspect_env(prefix, python_of(prefix))
    core = core_of(target)
    if not overlay.writable(prefix, target):
        digest = fingerprint.digest(
            conda_request, "", pip_request, "uv", env.environ, core.constraints()
        )
        return overlay.install(
            prefix, target, core, env.environ, installer_env, conda_request, pip_request, digest
        )
    steps = _steps(env, installer_env, conda_request, pip_request)
    by_kind = {step.installer.kind: step.installer for step in steps}
    python = python_of(prefix)
    digest = fingerprint.digest(
        conda_request,
        by_kind["conda"].identity if "conda" in by_kind else "",
        pip_request,
        by_kind["pip"].identity if "pip" in by_kind else "",
        env.environ,
        proc.executable_identity(str(python)),
    )
    if fingerprint.read(prefix) == digest:
        logger.info(
            "Extra packages already installed (fingerprint %s, checked in %.3f s): "
            "installers skipped",
            digest[:12],
            time.monotonic() - started,
        )
        return
    logger.info(
        "Installing extra packages into %s: %s",
        prefix,
        "; ".join(
            f"{step.installer.kind} [{step.request.describe()}] with {step.installer.describe()}"
            for step in steps
        ),
    )

    if allow_core_changes(env.environ):
        logger.warning(
            "%s is set: extra packages may replace the image's core (%d distributions the "
            "bootstrap, prefect and LUME's packages need); the agent may not start",
            ALLOW_CORE_CHANGES_VAR,
            len(core.pins),
        )
    else:
        for step in steps:
            step.installer.protect(core)
    # The journal opens before planning: planners touch the environment too (uv's .lock).
    transaction = journal.Journal.begin(prefix)
    planning = True
    try:
        for step in steps:
            step.plan = step.installer.plan(step.request, target)
            logger.info(
                "%s plan by %s in %.2f s: %s",
                step.installer.kind.capitalize(),
                step.installer.name,
                step.plan.seconds,
                step.plan.changes.describe(),
            )
            conflicts = core.changes_to(step.plan.changes)
            if conflicts and not allow_core_changes(env.environ):
                variable = CONDA_VAR if step.installer.kind == "conda" else PIP_VAR
                raise CoreChangeError(variable, step.request.describe(), conflicts)
        details = {  # for people reading the file: no credentials (it is world-readable)
            "conda": [without_credentials(spec) for spec in conda_request.specs]
            if conda_request
            else [],
            "pip": [without_credentials(word) for word in pip_request.requirements]
            if pip_request
            else [],
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if not any(step.todo for step in steps):
            for step in steps:
                step.installer.close()
            transaction.rollback()  # only what planning left (lock files)
            fingerprint.write(prefix, digest, details)
            logger.info("Extra packages already satisfied: nothing to install")
            return
        for step in steps:
            if step.plan is not None:
                transaction.back_up(step.plan.backups)
        planning = False
        for step in steps:
            if not step.todo:
                step.installer.close()
                continue
            seconds = step.installer.apply(step.plan)
            logger.info(
                "Installed %s packages with %s in %.2f s",
                step.installer.kind,
                step.installer.name,
                seconds,
            )
        _check(env, installer_env, python, core)
        fingerprint.write(prefix, digest, details)
        commit_seconds = transaction.commit()
    except BaseException as exc:
        raise _roll_back(prefix, transaction, steps, exc, planning) from None
    logger.info(
        "Extra packages installed in %.2f s (undo journal: %.2f s to open, %.2f s to close)",
        time.monotonic() - started,
        transaction.begin_seconds,
        commit_seconds,
    )


def _check(env: ExtrasEnv, installer_env, python: Path, core) -> None:
    """The installed packages agree with each other and the core still imports; else the
    install is rolled back (raise)."""
    from bootstrap.extras.check import check_environment
    from bootstrap.extras.pip import choose_pip_installer

    started = time.monotonic()
    checker = choose_pip_installer(env.environ, env.prefix, python, dict(installer_env))
    problem = check_environment(python, checker.tool, checker.path, core, checker.env)
    if problem:
        raise ExtrasError(f"the extra packages broke the environment: {problem}")
    logger.info(
        "Checked the environment in %.2f s: consistent, the core imports",
        time.monotonic() - started,
    )


def _roll_back(
    prefix: Path,
    transaction: journal.Journal,
    steps: List[Step],
    exc: BaseException,
    planning: bool,
) -> ExtrasError:
    """Undo the transaction (signals deferred); return the error to raise."""
    with proc.signals_deferred() as received:
        for step in steps:
            step.installer.close(force=True)
        if isinstance(exc, proc.Interrupted):
            logger.warning("Stopped by %s: rolling the environment back", exc.name)
        elif not planning:
            logger.warning("Installing extra packages failed: rolling the environment back")
        fingerprint.forget(prefix)
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
