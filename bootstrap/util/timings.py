"""How long each start-up step took, for the log and the agent's metrics.

The entrypoint and ``run`` share one process (the default command continues in-process),
so they share this record.
"""

from __future__ import annotations

import contextlib
import time
from typing import Dict, Iterator

STEPS: Dict[str, float] = {}


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        STEPS[step] = round(time.monotonic() - started, 4)
