"""The agent launcher: ``python -m bootstrap.agent agent <type> start OPTIONS...``.

The bootstrap execs this instead of ``prefect agent <type> start``: the same options, parsed
by prefect's own CLI, the same single process (so the same signals), but with hooks inside
that process that tune and observe prefect's agent:

- :mod:`~bootstrap.agent.config`: what the bootstrap decided for the launcher;
- :mod:`~bootstrap.agent.liveness`: every poll's outcome, and what it means (liveness,
  readiness, an outage long enough to stop);
- :mod:`~bootstrap.agent.hooks`: where prefect's agent is tuned (the poll ceiling) and
  observed (polls, submissions, failures);
- :mod:`~bootstrap.agent.health_server`: the agent's own health server, with readiness and a
  rate-limited poke;
- :mod:`~bootstrap.agent.watchdog`: the Docker engine check and the outage limit;
- :mod:`~bootstrap.agent.metrics`: Prometheus metrics.
"""
