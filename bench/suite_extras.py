"""Extra packages at start-up, in the prod image: uv vs pip, conda packages by py-rattler, the
cost of a restart whose extras are already installed, and the undo journal's cost.

- pip set: ``rich tqdm humanize`` from PyPI (6 distributions, none in the image), through the
  host's CA bundle (EXTRA_CA_CERT) because of the TLS-intercepting proxy. Cold: a new cache
  volume per run; warm: one volume primed once. The figure is the bootstrap's own
  "Extra packages installed in" time (inspection + plan + undo journal + install), so
  container start-up noise stays out of it.
- conda set: 6 noarch packages built here (a chain of dependencies, ~200 kB each) in a
  channel served from the host's loopback; installed by py-rattler (the image has no conda).
- Satisfied restart: ``docker start -a`` of a container whose extras are installed, against
  the same for a container without extras.
- Undo journal: opening + closing it on /opt/prefect, and opening + rolling back, measured
  in the image with the image's own environment.
- The core's protection: the check after installing (``uv pip check`` and the core's smoke
  import, the bootstrap's "Checked the environment in" time) on the uv warm path, against the
  same install without it (the warm install's time minus the check's, measured in the same
  runs). Holding the core while resolving is a constraints file on the same dry run: no
  separate cost to measure.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Dict, List, Optional

from bench.harness import Context, median_time
from testbed.packages import PackageServer, index_channel, make_conda_package, make_wheel

PIP_SET = "rich tqdm humanize"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CACHE = "/var/cache/prefect-agent"
INSTALLED = re.compile(r"Extra packages installed in ([0-9.]+) s")
CHECKED = re.compile(r"checked in ([0-9.]+) s")
CONDA_STEP = re.compile(r"Installed conda packages with rattler in ([0-9.]+) s")
CORE_CHECK = re.compile(r"Checked the environment in ([0-9.]+) s")

JOURNAL_SNIPPET = """
import time
from pathlib import Path
from bootstrap.extras import journal
prefix = Path("/opt/prefect")
journal.scan(prefix)  # warm the dentry cache, as the installer's own inspection does
t = time.perf_counter(); j = journal.Journal.begin(prefix); j.commit()
open_close = time.perf_counter() - t
t = time.perf_counter(); j = journal.Journal.begin(prefix); j.rollback()
open_rollback = time.perf_counter() - t
print(open_close, open_rollback, len(j.entries))
"""


class Runner:
    def __init__(self, ctx: Context):
        self.docker = ctx.docker
        self.image = ctx.prod_image
        self.volumes: List[str] = []

    def volume(self) -> str:
        name = f"pa-bench-extras-{uuid.uuid4().hex[:10]}"
        subprocess.run([self.docker, "volume", "create", name], check=True, capture_output=True)
        self.volumes.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.volumes:
            subprocess.run([self.docker, "volume", "rm", "-f", name], capture_output=True)

    def argv(self, env: Dict[str, str], volume: Optional[str], command: List[str]) -> List[str]:
        argv = [self.docker, "run", "--rm", "--network", "host"]
        if volume:
            argv += ["-v", f"{volume}:{CACHE}"]
        if HOST_CA.is_file():
            argv += ["-v", f"{HOST_CA}:/run/host-ca.pem:ro", "-e", "EXTRA_CA_CERT=/run/host-ca.pem"]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        return [*argv, self.image, *command]

    def install_seconds(self, env: Dict[str, str], volume: Optional[str], pattern=INSTALLED, *more):
        """The seconds ``pattern`` reports in the container's log (a tuple, with ``more``)."""
        result = subprocess.run(
            self.argv(env, volume, ["true"]), capture_output=True, text=True, timeout=600
        )
        output = result.stdout + result.stderr
        matches = [regex.search(output) for regex in (pattern, *more)]
        if result.returncode != 0 or not all(matches):
            raise RuntimeError(f"extras install failed:\n{output[-3000:]}")
        values = [float(match.group(1)) for match in matches if match]
        return tuple(values) if more else values[0]


def _pip(ctx: Context, runner: Runner) -> None:
    for tool in ("pip", "uv"):
        env = {"EXTRA_PIP_PACKAGES": PIP_SET, "EXTRA_PIP_INSTALLER": tool}
        cold = [runner.install_seconds(env, runner.volume()) for _ in range(ctx.repeat)]
        ctx.record(
            f"extras_{tool}_cold",
            f"{tool}: {PIP_SET} (cold cache)",
            cold,
            baseline="extras_pip_cold" if tool == "uv" else None,
            goal="uv well below pip" if tool == "uv" else None,
        )
        warm_volume = runner.volume()
        runner.install_seconds(env, warm_volume)  # prime
        warm, checks = [], []
        for _ in range(ctx.repeat):
            installed, checked = runner.install_seconds(env, warm_volume, INSTALLED, CORE_CHECK)
            warm.append(installed)
            checks.append(checked)
        ctx.record(
            f"extras_{tool}_warm",
            f"{tool}: {PIP_SET} (warm cache volume)",
            warm,
            baseline="extras_pip_warm" if tool == "uv" else f"extras_{tool}_cold",
            note="pip's HTTP cache stays empty behind the proxy" if tool == "pip" else None,
        )
        if tool == "uv":
            ctx.record(
                "extras_uv_warm_unchecked",
                f"uv: {PIP_SET} (warm), without the core check",
                [total - check for total, check in zip(warm, checks)],
            )
            ctx.record(
                "extras_uv_warm_checked",
                f"uv: {PIP_SET} (warm), with the core held and checked",
                warm,
                baseline="extras_uv_warm_unchecked",
                goal="<= 1.3 x unchecked",
                note="the check: uv pip check, and importing the core in a fresh interpreter "
                "only when the install could have changed its imports (bootstrap.extras.touched)",
            )


def _conda_channel(root: Path) -> Path:
    """benchpkg0 <- benchpkg1 <- ... <- benchpkg5, ~200 kB of incompressible data each."""
    channel = root / "channel"
    for index in range(6):
        depends = ["python >=3.8"] + ([f"benchpkg{index - 1}"] if index else [])
        make_conda_package(
            channel, f"benchpkg{index}", depends=depends, data={"data.bin": os.urandom(200_000)}
        )
    index_channel(channel)
    return channel


def _conda(ctx: Context, runner: Runner, server: PackageServer) -> None:
    env = {"EXTRA_CONDA_PACKAGES": f"-c {server.url}/channel benchpkg5"}
    cold = [runner.install_seconds(env, runner.volume()) for _ in range(ctx.repeat)]
    ctx.record("extras_conda_cold", "rattler: 6 conda packages, 1.2 MB (cold cache)", cold)
    warm_volume = runner.volume()
    runner.install_seconds(env, warm_volume)  # prime
    warm = [runner.install_seconds(env, warm_volume) for _ in range(ctx.repeat)]
    ctx.record(
        "extras_conda_warm",
        "rattler: 6 conda packages (warm cache volume)",
        warm,
        baseline="extras_conda_cold",
    )
    steps = [runner.install_seconds(env, warm_volume, CONDA_STEP) for _ in range(ctx.repeat)]
    ctx.record(
        "extras_conda_warm_link",
        "rattler: 6 conda packages, link step only (warm)",
        steps,
        baseline="extras_conda_warm",
    )


def _restart(ctx: Context, runner: Runner, server: PackageServer) -> None:
    def create(env: Dict[str, str]) -> str:
        argv = runner.argv(env, None, ["true"])
        argv[1:3] = ["create"]  # docker create ... (no --rm)
        name = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run([runner.docker, "start", "-a", name], capture_output=True, check=True)
        return name

    plain = create({})
    with_extras = create(
        {
            "EXTRA_CONDA_PACKAGES": f"-c {server.url}/channel benchpkg5",
            "EXTRA_PIP_PACKAGES": f"--no-index --find-links {server.url}/wheels/ benchwheel",
        }
    )
    try:
        checks: List[float] = []

        def start(name: str):
            def once() -> None:
                result = subprocess.run(
                    [runner.docker, "start", "-a", name], capture_output=True, text=True, check=True
                )
                match = CHECKED.search(result.stderr)
                if match:
                    checks.append(float(match.group(1)))

            return once

        ctx.record(
            "extras_restart_plain",
            "docker start, no extras",
            median_time(start(plain), ctx.repeat),
        )
        ctx.record(
            "extras_restart_satisfied",
            "docker start, extras already installed",
            median_time(start(with_extras), ctx.repeat),
            baseline="extras_restart_plain",
            goal="< 1 s over no extras",
        )
        ctx.record(
            "extras_satisfied_check",
            "fingerprint check on that start (bootstrap's own time)",
            checks,
            baseline="extras_restart_plain",
        )
    finally:
        subprocess.run([runner.docker, "rm", "-f", plain, with_extras], capture_output=True)


def _journal(ctx: Context, runner: Runner) -> None:
    open_close: List[float] = []
    open_rollback: List[float] = []
    entries = "0"
    for _ in range(ctx.repeat):
        argv = runner.argv({}, None, ["python", "-c", JOURNAL_SNIPPET])
        argv[argv.index(runner.image) : argv.index(runner.image)] = ["--user", "1000"]
        output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
        open_close.append(float(output[0]))
        open_rollback.append(float(output[1]))
        entries = output[2]
    ctx.record(
        "extras_journal_commit",
        f"undo journal open+close ({entries} paths)",
        open_close,
        baseline="extras_uv_warm",
    )
    ctx.record(
        "extras_journal_rollback",
        "undo journal open+rollback (nothing to undo)",
        open_rollback,
        baseline="extras_uv_warm",
    )


def run(ctx: Context) -> None:
    runner = Runner(ctx)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        _conda_channel(root)
        make_wheel(root / "wheels", "benchwheel")
        with PackageServer(root) as server:
            try:
                _pip(ctx, runner)
                _conda(ctx, runner, server)
                _restart(ctx, runner, server)
                _journal(ctx, runner)
            finally:
                runner.cleanup()
