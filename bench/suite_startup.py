"""Agent start-up in the prod image, against the floor of starting Python with prefect in it.

- Start-up: ``docker run -d`` (Docker agent: socket mounted, host network, no extras) until
  the agent's ``/api/health`` answers on its address, polled every 20 ms. The tenant and the
  project already exist in the API double (prefect_api_double), as on every start but
  the first.
- Floor: ``docker run --rm IMAGE python -c "import prefect"`` in the same image, through its
  entrypoint, as a flow-run container starts; and the same with ``--entrypoint python``
  (no bootstrap at all). Both include the container's start, like the start-up figure.
- Timeline: the same start-up with ``BOOTSTRAP_LOG_LEVEL=DEBUG`` (for the entrypoint and
  root-drop markers), phases from the logs (bench/timeline.py), plotted as median phase
  durations to bench/startup-timeline.png. The headline figure is measured at the default
  INFO level.

Runs of the four kinds are interleaved (so drift on a shared host spreads evenly), after one
unrecorded warm-up of each.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import time
from typing import Dict, List, Tuple

from bench import timeline
from bench.harness import ROOT, Context
from prefect_api_double import PrefectApiDouble
from testbed.net import free_port

PNG = ROOT / "bench" / "startup-timeline.png"
SOCKET = "/var/run/docker.sock"
TENANT, PROJECT = "LUME", "lume"
POLL = 0.02
GOAL_OVER_FLOOR = 1.5


def _docker(ctx: Context, *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [ctx.docker, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ...: {result.stderr.strip()}")
    return result.stdout


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/api/health")
        return connection.getresponse().status == 200
    except OSError:  # refused (not listening yet), reset, timeout
        return False
    finally:
        connection.close()


def _start_agent(ctx: Context, api: PrefectApiDouble, level: str) -> Tuple[float, Dict]:
    """One start: seconds to healthy, and the timeline markers (relative to docker run)."""
    port = free_port()
    env = {
        "PREFECT__CLOUD__API": api.url,
        "BOOTSTRAP_TENANT": TENANT,
        "BOOTSTRAP_PROJECTS": PROJECT,
        "BOOTSTRAP_AGENT_ADDRESS": f"http://:{port}",
        "BOOTSTRAP_LOG_LEVEL": level,
        "BOOTSTRAP_DOCKER_NETWORKS": "host",  # flow runs reach the server (the agent checks)
    }
    # as the seeds start it: the image's root step adds the socket's group and drops root
    argv = ["run", "-d", "--network", "host", "-v", f"{SOCKET}:{SOCKET}"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    started = time.time()
    container = _docker(ctx, *argv, ctx.prod_image).strip()
    try:
        checked = time.monotonic()
        while not _healthy(port):
            if time.time() - started > 120:
                raise RuntimeError(
                    f"the agent was not healthy within 120 s:\n{_logs(ctx, container)}"
                )
            if time.monotonic() - checked > 1:  # a container that exited never answers
                checked = time.monotonic()
                if not _running(ctx, container):
                    raise RuntimeError(f"the agent container exited:\n{_logs(ctx, container)}")
            time.sleep(POLL)
        healthy = time.time()
        created, running = _docker(
            ctx, "inspect", "--format", "{{.Created}} {{.State.StartedAt}}", container
        ).split()
        markers = timeline.log_markers(_logs(ctx, container))
        markers.update(
            run_d=started,
            created=timeline.docker_time(created),
            started=timeline.docker_time(running),
            healthy=healthy,
        )
        return healthy - started, {name: when - started for name, when in markers.items()}
    finally:
        subprocess.run([ctx.docker, "rm", "-f", container], capture_output=True, check=False)


def _running(ctx: Context, container: str) -> bool:
    return _docker(ctx, "inspect", "--format", "{{.State.Running}}", container).strip() == "true"


def _logs(ctx: Context, container: str) -> str:
    result = subprocess.run(
        [ctx.docker, "logs", "--timestamps", container], capture_output=True, text=True
    )
    return result.stdout + result.stderr


def _floor(ctx: Context, bare: bool) -> float:
    argv = [ctx.docker, "run", "--rm", "--network", "host"]
    argv += ["--entrypoint", "python", ctx.prod_image] if bare else [ctx.prod_image, "python"]
    started = time.perf_counter()
    subprocess.run([*argv, "-c", "import prefect"], capture_output=True, check=True, timeout=120)
    return time.perf_counter() - started


def run(ctx: Context) -> None:
    api = PrefectApiDouble().start()
    try:
        api.create_project(PROJECT, api.create_tenant(TENANT))
        samples: Dict[str, List[float]] = {"floor": [], "bare": [], "start": [], "over": []}
        phases: List[Dict[str, float]] = []
        # warm-up: page cache, the engine's image metadata, the double's first answers
        _floor(ctx, bare=False)
        _floor(ctx, bare=True)
        _start_agent(ctx, api, "INFO")
        for _ in range(ctx.repeat):
            floor = _floor(ctx, bare=False)
            samples["floor"].append(floor)
            samples["bare"].append(_floor(ctx, bare=True))
            seconds, _ = _start_agent(ctx, api, "INFO")
            samples["start"].append(seconds)
            samples["over"].append(seconds - floor)
            _, markers = _start_agent(ctx, api, "DEBUG")
            phases.append(timeline.phase_durations(markers))
    finally:
        api.stop()

    ctx.record(
        "startup_floor",
        "floor: container + import prefect",
        samples["floor"],
        note='docker run --rm IMAGE python -c "import prefect", through the entrypoint',
    )
    ctx.record(
        "startup_floor_bare",
        "floor without the entrypoint",
        samples["bare"],
        baseline="startup_floor",
        note="--entrypoint python: no tini, no bootstrap",
    )
    ctx.record(
        "startup_healthy",
        "agent start: docker run -d to /api/health",
        samples["start"],
        baseline="startup_floor",
        goal=f"floor + {GOAL_OVER_FLOOR:g} s",
    )
    ctx.record(
        "startup_over_floor",
        "agent start minus the floor (same iteration)",
        samples["over"],
        goal=f"< {GOAL_OVER_FLOOR:g} s",
    )
    ctx.record(
        "startup_healthy_debug",
        "agent start, DEBUG log level (timeline runs)",
        [sum(run.values()) for run in phases],
        baseline="startup_healthy",
    )
    for key, label, _, _ in timeline.PHASES:
        ctx.record(
            f"startup_phase_{key}",
            f"timeline: {label}",
            [round(run[key] * 1000) for run in phases],
            unit="ms",
            note="BOOTSTRAP_LOG_LEVEL=DEBUG runs",
        )
    floor = statistics.median(samples["floor"])
    timeline.plot(
        phases,
        PNG,
        f"Agent start-up in {ctx.prod_image}, median phase durations of {ctx.repeat} runs",
        floor=floor,
        goal=floor + GOAL_OVER_FLOOR,
    )
    print(f"  wrote {PNG.relative_to(ROOT)}", flush=True)
