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

import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from bootstrap.extras import journal
from bootstrap.extras.tls import remove_leftover_bundles
from bootstrap.extras.variables import ExtrasEnv

if TYPE_CHECKING:
    from bootstrap.extras.overlay import Overlay

__all__ = ["install_extras"]


def install_extras(environ: Mapping[str, str], prefix: Optional[Path] = None) -> Optional[Overlay]:
    """Install EXTRA_CONDA_PACKAGES and EXTRA_PIP_PACKAGES into the runtime environment
    (``$PREFECT_ENV``, else this interpreter's prefix), or raise ExtrasError.

    Returns the overlay the command must find first on its PYTHONPATH when the environment
    is read-only (:mod:`bootstrap.extras.overlay`), else None."""
    started = time.monotonic()
    env = ExtrasEnv.read(environ, prefix)
    remove_leftover_bundles()  # a docker kill mid-install leaves one behind
    if not env.requested and not journal.pending(env.prefix):
        return None  # most starts: nothing asked for, nothing to roll back
    # The installers, loaded only now: a flow-run container without extras never imports them.
    from bootstrap.extras.requested import install_requested

    return install_requested(env, environ, started)
