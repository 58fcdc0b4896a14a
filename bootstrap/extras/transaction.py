"""The install of extra packages as one transaction, top-down:

  choose the installers -> fingerprint (unchanged: stop) -> open the undo journal ->
  plan every step (nothing changed yet; the core may not move) -> back up what the plans
  replace -> apply conda, then pip -> check the environment -> store the fingerprint ->
  commit; any failure or stop signal on the way rolls the whole environment back.

A read-only environment gets an overlay instead (:mod:`bootstrap.extras.overlay`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from bootstrap.extras import fingerprint, journal, overlay, proc, touched
from bootstrap.extras.check import check_environment
from bootstrap.extras.conda import choose_conda_installer
from bootstrap.extras.conda_request import CondaRequest
from bootstrap.extras.core import (
    ALLOW_CORE_CHANGES_VAR,
    Core,
    CoreChangeError,
    allow_core_changes,
    core_of,
)
from bootstrap.extras.environment import TargetEnv, inspect_env, python_of
from bootstrap.extras.overlay import Overlay
from bootstrap.extras.pip import choose_pip_installer
from bootstrap.extras.pip_request import PipRequest
from bootstrap.extras.plan import Installer, InstallPlan
from bootstrap.extras.variables import CONDA_VAR, PIP_VAR, ExtrasEnv
from bootstrap.util.errors import ExtrasError
from bootstrap.util.log import logger
from bootstrap.util.secrets import without_credentials


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


def install(
    env: ExtrasEnv,
    installer_env: Mapping[str, str],
    conda_request: Optional[CondaRequest],
    pip_request: Optional[PipRequest],
    started: float,
) -> Optional[Overlay]:
    """Install both requests into ``env.prefix`` all or nothing (or as an overlay when the
    environment is read-only): the overlay the command must find first, or None."""
    prefix = env.prefix
    python = python_of(prefix)
    target = inspect_env(prefix, python)
    core = core_of(target)
    if not overlay.writable(prefix, target):
        digest = fingerprint.digest(
            conda_request, "", pip_request, "uv", env.environ, core.constraints()
        )
        return overlay.install(
            prefix, target, core, env.environ, installer_env, conda_request, pip_request, digest
        )
    steps = choose_steps(env, installer_env, conda_request, pip_request)
    digest = step_digest(env, steps, conda_request, pip_request, python)
    if fingerprint.read(prefix) == digest:
        logger.info(
            "Extra packages already installed (fingerprint %s, checked in %.3f s): "
            "installers skipped",
            digest[:12],
            time.monotonic() - started,
        )
        return None
    announce(env, steps, core)
    # The journal opens before planning: planners touch the environment too (uv's .lock).
    transaction = begin_journal(prefix, steps)
    planning = True
    try:
        plan_steps(env, steps, target, core)
        details = fingerprint_details(conda_request, pip_request)
        if not any(step.todo for step in steps):
            for step in steps:
                step.installer.close()
            transaction.rollback()  # only what planning left (lock files)
            fingerprint.write(prefix, digest, details)
            logger.info("Extra packages already satisfied: nothing to install")
            return None
        for step in steps:
            if step.plan is not None:
                transaction.back_up(step.plan.backups)
        planning = False
        apply_steps(steps)
        check(env, installer_env, python, core, import_check_reason(target, transaction, steps))
        fingerprint.write(prefix, digest, details)
        commit_seconds = transaction.commit()
    except BaseException as exc:
        raise roll_back(prefix, transaction, steps, exc, planning) from None
    logger.info(
        "Extra packages installed in %.2f s (undo journal: %.2f s to open, %.2f s to close)",
        time.monotonic() - started,
        transaction.begin_seconds,
        commit_seconds,
    )
    return None


def choose_steps(
    env: ExtrasEnv,
    installer_env: Mapping[str, str],
    conda_request: Optional[CondaRequest],
    pip_request: Optional[PipRequest],
) -> List[Step]:
    steps: List[Step] = []
    if conda_request is not None:
        conda = choose_conda_installer(env.environ, env.prefix, dict(installer_env), sys.executable)
        steps.append(Step(conda, conda_request))
    if pip_request is not None:
        python = python_of(env.prefix)
        pip = choose_pip_installer(env.environ, env.prefix, python, dict(installer_env))
        steps.append(Step(pip, pip_request))
    return steps


def step_digest(
    env: ExtrasEnv,
    steps: List[Step],
    conda_request: Optional[CondaRequest],
    pip_request: Optional[PipRequest],
    python: Path,
) -> str:
    """What the install would do, with which installers, into which interpreter."""
    by_kind = {step.installer.kind: step.installer for step in steps}
    return fingerprint.digest(
        conda_request,
        by_kind["conda"].identity if "conda" in by_kind else "",
        pip_request,
        by_kind["pip"].identity if "pip" in by_kind else "",
        env.environ,
        proc.executable_identity(str(python)),
    )


def announce(env: ExtrasEnv, steps: List[Step], core: Core) -> None:
    """Log what is about to be installed; protect the core unless the operator lifted it."""
    logger.info(
        "Installing extra packages into %s: %s",
        env.prefix,
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
        return
    for step in steps:
        step.installer.protect(core)


def begin_journal(prefix: Path, steps: List[Step]) -> journal.Journal:
    """The undo journal, opened; if it cannot open (another install holds it), the installers
    end first: nothing to roll back yet, only their own files (the core's constraints)."""
    try:
        return journal.Journal.begin(prefix)
    except BaseException:
        for step in steps:
            step.installer.close(force=True)
        raise


def plan_steps(env: ExtrasEnv, steps: List[Step], target: TargetEnv, core: Core) -> None:
    """Plan every step before changing anything; refuse a plan that moves the core."""
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


def fingerprint_details(
    conda_request: Optional[CondaRequest], pip_request: Optional[PipRequest]
) -> Dict[str, Any]:
    """For people reading the fingerprint file: no credentials (it is world-readable)."""
    return {
        "conda": [without_credentials(spec) for spec in conda_request.specs]
        if conda_request
        else [],
        "pip": [without_credentials(word) for word in pip_request.requirements]
        if pip_request
        else [],
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def apply_steps(steps: List[Step]) -> None:
    for step in steps:
        if not step.todo:
            step.installer.close()
            continue
        seconds = step.installer.apply(step.plan)
        step.installer.close()  # e.g. the core's constraints file in /tmp
        logger.info(
            "Installed %s packages with %s in %.2f s",
            step.installer.kind,
            step.installer.name,
            seconds,
        )


def import_check_reason(
    target: TargetEnv, transaction: journal.Journal, steps: List[Step]
) -> Optional[str]:
    """Why the core must be imported to be trusted after this install (bootstrap.extras.
    touched), or None: it only added distributions that cannot change those imports."""
    prefix = target.prefix
    site = str(target.purelib.relative_to(prefix))
    before = set(transaction.entries)
    new = touched.new_dist_infos(prefix, site, before)
    files = touched.recorded_files(prefix, site, new)
    if files is None:
        return "a new distribution's RECORD cannot be read"
    removed = [f"{n} {v}".strip() for s in steps if s.plan for n, v in s.plan.changes.remove]
    conda = any(step.todo for step in steps if step.installer.kind == "conda")
    return touched.why_import_check(
        site, before, files, removed, conda,
        optional=touched.optional_imports(prefix),
        plugin_groups=touched.entry_point_groups(prefix, new),
    )  # fmt: skip


def check(
    env: ExtrasEnv,
    installer_env: Mapping[str, str],
    python: Path,
    core: Core,
    import_reason: Optional[str] = "always",
) -> None:
    """The installed packages agree with each other and, if the install could have changed
    what it imports (``import_reason``), the core still imports; else the install is rolled
    back (raise)."""
    started = time.monotonic()
    checker = choose_pip_installer(env.environ, env.prefix, python, dict(installer_env))
    problem = check_environment(
        python, checker.tool, checker.path, core, checker.env, import_core=bool(import_reason)
    )
    if problem:
        raise ExtrasError(f"the extra packages broke the environment: {problem}")
    logger.info(
        "Checked the environment in %.2f s: consistent, %s",
        time.monotonic() - started,
        f"the core imports ({import_reason})"
        if import_reason
        else "only new distributions that cannot change the core's imports",
    )


def roll_back(
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
