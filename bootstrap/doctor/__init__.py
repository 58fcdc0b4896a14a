"""``prefect-agent-bootstrap doctor``: what an operator asks first when runs do not start --
is the server there, which agents run with which labels, which runs are Late or stuck in
Submitted and why, and which prefect versions meet. Facts (:mod:`.facts`), then conclusions
(:mod:`.findings`), printed as plain lines; the exit status says whether a problem was found.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

from bootstrap.api.client import PrefectApi
from bootstrap.doctor.facts import gather
from bootstrap.doctor.findings import findings
from bootstrap.util.errors import ServerUnavailableError

PROBLEMS_FOUND = 1


def doctor(
    api: PrefectApi,
    environ: Mapping[str, str],
    late_after: float,
    submitted_after: float,
    docker_url: Optional[str],
    echo: Callable[[str], None] = print,
) -> int:
    """Print the findings; 0 if none is a problem, 1 otherwise (the server unreachable
    raises ServerUnavailableError: exit 3)."""
    try:
        facts = gather(api, environ, late_after, submitted_after, docker_url)
    except ServerUnavailableError as exc:
        raise ServerUnavailableError(
            f"the Prefect Server at {api.display_url} does not answer: {exc}"
        ) from None
    problems = 0
    for finding in findings(facts):
        problems += finding.level == "PROBLEM"
        for line in finding.lines():
            echo(line)
    echo(f"{problems} problem(s) found" if problems else "no problem found")
    return PROBLEMS_FOUND if problems else 0
