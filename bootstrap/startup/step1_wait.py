"""Wait for the Prefect Server to answer, with exponential back-off, up to a timeout."""

from __future__ import annotations

import time

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

from bootstrap.api.client import PrefectApi
from bootstrap.util.errors import ApiError, ServerUnavailableError
from bootstrap.util.log import logger

# First retry after 0.25 s, doubling up to 5 s between attempts.
BACKOFF = wait_exponential(multiplier=0.25, min=0.25, max=5)


def wait_for_server(api: PrefectApi, timeout: float) -> None:
    """Return once ``query { hello }`` succeeds; raise ServerUnavailableError after ``timeout``.

    Connection failures, 5xx answers and malformed answers are retried: a server that is
    still starting produces all three.
    """
    started = time.monotonic()

    def log_attempt(state: RetryCallState) -> None:
        logger.info(
            "Prefect Server at %s not ready (attempt %d: %s); retrying in %.2f s",
            api.display_url,
            state.attempt_number,
            state.outcome.exception() if state.outcome else "?",
            state.upcoming_sleep,
        )

    retrying = Retrying(
        stop=stop_before_delay(timeout),
        wait=BACKOFF,
        retry=retry_if_exception_type((ServerUnavailableError, ApiError)),
        before_sleep=log_attempt,
    )
    logger.info("Waiting up to %.0f s for the Prefect Server at %s", timeout, api.display_url)
    try:
        for attempt in retrying:
            with attempt:
                api.hello()
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise ServerUnavailableError(
            f"the Prefect Server at {api.display_url} did not answer within {timeout:g} s "
            f"({exc.last_attempt.attempt_number} attempts); last error: {last}"
        ) from None
    logger.info(
        "Prefect Server at %s answered after %.2f s", api.display_url, time.monotonic() - started
    )
