"""Image size and build time of prod and dev, against a baseline built the anchors' way.

- Baseline (bench/baseline/Dockerfile): the same locked packages (the committed
  prefect-agent-docker/requirements.lock) ``pip install``-ed in one stage on the same base,
  caches and bytecode kept, nothing cleaned up, tini, an entrypoint that pip-installs
  EXTRA_PIP_PACKAGES (the prefecthq/prefect 1.x recipe, less its compilers). It lacks only
  the bootstrap itself (a 0.3 MB wheel).
- Base: what the Makefile builds on (scripts/base-image.sh: the pinned BASE_IMAGE if present
  or pullable, else the offline Debian base).
- Builds run from a scratch copy of the committed tree (``git archive HEAD``), so the working
  tree is never touched and uncommitted work never changes the figures. The proxy CA goes to
  every build as the BuildKit secret ``extra_ca`` (EXTRA_CA_CERT, else the host's bundle).
- Cold: ``--no-cache`` after pruning the BuildKit cache mounts (the uv cache); baseline, prod
  and dev interleaved, min(repeat, 3) times each. Sizes are those of the cold-built images.
- Warm: the bootstrap source changed (a new comment in bootstrap/__init__.py of the scratch
  copy), everything else cached; prod then dev, ``repeat`` times.

Images are tagged ``prefect-agent-bench:*`` and removed at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench.harness import ROOT, Context
from testbed.docker import resolve_base_image

TAG = "prefect-agent-bench"
DOCKERFILE = Path("prefect-agent-docker/Dockerfile")
BASELINE = ROOT / "bench" / "baseline"
LOCK = Path("prefect-agent-docker/requirements.lock")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DOWNLOADED = re.compile(r"Downloading \S+ \(([0-9.]+) (kB|MB|GB|B)\)")
UNITS = {"B": 1e-6, "kB": 1e-3, "MB": 1.0, "GB": 1e3}

# Where the bytes are, measured inside an image (MB): native code, bytecode, test suites.
BREAKDOWN = r"""
cd "$1" || exit 1
sum() { awk '{ s += $1 } END { printf "%.1f\n", s / 1e6 }'; }
echo native $(find . -type f \( -name '*.so' -o -name '*.so.*' \) -printf '%s\n' | sum)
echo bytecode $(find . -type f -name '*.pyc' -printf '%s\n' | sum)
echo tests $(find lib -type d \( -name tests -o -name test \) -prune -exec du -sb {} + | sum)
echo env $(du -sb . | sum)
echo pip_cache $( (du -sb /root/.cache/pip 2>/dev/null || echo 0) | sum)
"""


class Builder:
    def __init__(self, ctx: Context) -> None:
        self.docker = ctx.docker
        self.base = resolve_base_image(ctx.docker)
        ca = os.environ.get("EXTRA_CA_CERT") or (str(HOST_CA) if HOST_CA.is_file() else "")
        self.secret = ["--secret", f"id=extra_ca,src={ca}"] if ca else []
        self.tags: List[str] = []

    def build(
        self, context: Path, dockerfile: Path, tag: str, target: Optional[str], cold: bool
    ) -> Tuple[float, str]:
        """Seconds of one ``docker build`` (BuildKit, host network), and its log."""
        if cold:
            self.prune_cache_mounts()
        argv = [self.docker, "build", "--network", "host", "--progress", "plain"]
        argv += ["--file", str(context / dockerfile), "--build-arg", f"BASE_IMAGE={self.base}"]
        argv += [*self.secret, "--tag", tag]
        argv += ["--target", target] if target else []
        argv += ["--no-cache"] if cold else []
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        started = time.perf_counter()
        result = subprocess.run(
            [*argv, str(context)], capture_output=True, text=True, env=env, timeout=1200
        )
        seconds = time.perf_counter() - started
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"docker build of {tag} failed:\n{log[-4000:]}")
        if tag not in self.tags:
            self.tags.append(tag)
        return seconds, log

    def prune_cache_mounts(self) -> None:
        subprocess.run(
            [self.docker, "builder", "prune", "--force", "--filter", "type=exec.cachemount"],
            capture_output=True,
            check=True,
        )

    def size_mb(self, image: str) -> float:
        out = subprocess.run(
            [self.docker, "image", "inspect", "--format", "{{.Size}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out) / 1e6  # MB as `docker images` counts them

    def shell(self, image: str, script: str, *args: str) -> str:
        """Run a shell script in the image (its entrypoint bypassed); return its stdout."""
        argv = [self.docker, "run", "--rm", "--network", "host", "--entrypoint", "sh", image]
        return subprocess.run(
            [*argv, "-c", script, "sh", *args], capture_output=True, text=True, check=True
        ).stdout

    def breakdown(self, image: str) -> Dict[str, float]:
        out = self.shell(image, BREAKDOWN, "/opt/prefect")
        return {key: float(value) for key, value in (line.split() for line in out.splitlines())}

    def components(self, image: str) -> Dict[str, float]:
        """MB of every entry of the environment's site-packages and bin/, and the rest of
        the environment (the image's other layers are a few kB)."""
        script = (
            'site=$(/opt/prefect/bin/python -c "import sysconfig; '
            "print(sysconfig.get_paths()['purelib'])\")\n"
            'cd "$site" && du -sb -- * | sed "s|^|site |"\n'
            "du -sb /opt/prefect/bin | sed 's|^|bin |'\n"
            "du -sb /opt/prefect | sed 's|^|env |'\n"
        )
        sizes: Dict[str, float] = {}
        for line in self.shell(image, script).splitlines():
            kind, size, name = line.split(None, 2)
            sizes["bin/" if kind == "bin" else "env" if kind == "env" else name] = int(size) / 1e6
        return sizes

    def biggest_packages(self, image: str, count: int = 10) -> str:
        script = (
            'cd "$(/opt/prefect/bin/python -c "import sysconfig; '
            "print(sysconfig.get_paths()['purelib'])\")\" && "
            f"du -sm -- * | sort -rn | head -{count}"
        )
        return self.shell(image, script)

    def cleanup(self) -> None:
        if self.tags:
            subprocess.run([self.docker, "image", "rm", *self.tags], capture_output=True)


def _committed_tree(target: Path) -> None:
    archive = target.parent / "tree.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", f"--output={archive}", "HEAD"],
        check=True,
    )
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(target)], check=True)
    archive.unlink()


def _baseline_context(target: Path, tree: Path) -> None:
    target.mkdir()
    for name in ("Dockerfile", "entrypoint.sh"):
        (target / name).write_bytes((BASELINE / name).read_bytes())
    (target / "entrypoint.sh").chmod(0o755)
    (target / "requirements.lock").write_bytes((tree / LOCK).read_bytes())


def _downloaded_mb(log: str) -> float:
    """What pip downloaded (its log), i.e. what its HTTP cache would keep on a network
    that lets caching headers through."""
    return sum(float(size) * UNITS[unit] for size, unit in DOWNLOADED.findall(log))


def run(ctx: Context) -> None:
    builder = Builder(ctx)
    print(f"  base image: {builder.base}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-image-") as scratch:
        tree, baseline = Path(scratch) / "tree", Path(scratch) / "baseline"
        tree.mkdir()
        _committed_tree(tree)
        _baseline_context(baseline, tree)
        try:
            _measure(ctx, builder, tree, baseline)
        finally:
            builder.cleanup()


def _measure(ctx: Context, builder: Builder, tree: Path, baseline: Path) -> None:
    cold_runs = min(ctx.repeat, 3)
    cold: Dict[str, List[float]] = {"baseline": [], "prod": [], "dev": []}
    sizes: Dict[str, List[float]] = {"baseline": [], "prod": [], "dev": []}
    downloads: List[float] = []
    for _ in range(cold_runs):
        seconds, log = builder.build(
            baseline, Path("Dockerfile"), f"{TAG}:baseline", None, cold=True
        )
        cold["baseline"].append(seconds)
        sizes["baseline"].append(builder.size_mb(f"{TAG}:baseline"))
        downloads.append(_downloaded_mb(log))
        for target in ("prod", "dev"):
            seconds, _ = builder.build(tree, DOCKERFILE, f"{TAG}:{target}", target, cold=True)
            cold[target].append(seconds)
            sizes[target].append(builder.size_mb(f"{TAG}:{target}"))

    # prime: the layer cache now holds this exact tree for both targets
    for target in ("prod", "dev"):
        builder.build(tree, DOCKERFILE, f"{TAG}:{target}", target, cold=False)
    warm: Dict[str, List[float]] = {"prod": [], "dev": []}
    marker = tree / "bootstrap" / "__init__.py"
    original = marker.read_text()
    for index in range(ctx.repeat):
        marker.write_text(f"{original}# make bench: warm rebuild {index} {time.time_ns()}\n")
        for target in ("prod", "dev"):
            seconds, _ = builder.build(tree, DOCKERFILE, f"{TAG}:{target}", target, cold=False)
            warm[target].append(seconds)

    base_mb = builder.size_mb(builder.base)
    parts = {name: builder.breakdown(f"{TAG}:{name}") for name in ("baseline", "prod")}
    print(f"  biggest packages in prod (MB):\n{_indent(builder.biggest_packages(f'{TAG}:prod'))}")
    print(f"  where the bytes are (MB): {parts}", flush=True)

    ctx.record("size_base", f"size: base image ({builder.base})", [base_mb], unit="MB")
    ctx.record(
        "size_baseline",
        "size: baseline (pip, one stage)",
        sizes["baseline"],
        unit="MB",
        note="pip's HTTP cache stays empty here: the proxy strips caching headers",
    )
    ctx.record(
        "size_prod",
        "size: prod",
        sizes["prod"],
        unit="MB",
        baseline="size_baseline",
        goal="<= 0.6 x baseline",
    )
    ctx.record("size_dev", "size: dev", sizes["dev"], unit="MB", baseline="size_baseline")
    ctx.record(
        "size_baseline_cached",
        "size: baseline + pip's HTTP cache (estimate)",
        [size + mb for size, mb in zip(sizes["baseline"], downloads)],
        unit="MB",
        note="baseline plus what pip downloaded: its cache on a network that allows caching",
    )
    ctx.record(
        "size_prod_vs_cached",
        "size: prod, vs. that estimate",
        sizes["prod"],
        unit="MB",
        baseline="size_baseline_cached",
    )
    ctx.components = _by_component(builder.components(f"{TAG}:prod"), base_mb)  # for the plot
    print("  prod by component (MB): " + ", ".join(
        f"{name} {mb:.0f}" for name, mb in ctx.components.items()
    ), flush=True)  # fmt: skip
    ctx.record("bytes_prod_native", "prod: native code (.so)", [parts["prod"]["native"]], "MB")
    ctx.record("bytes_prod_env", "prod: /opt/prefect", [parts["prod"]["env"]], "MB")
    ctx.record("bytes_baseline_env", "baseline: its environment", [parts["baseline"]["env"]], "MB")
    ctx.record("bytes_prod_pyc", "prod: bytecode (.pyc)", [parts["prod"]["bytecode"]], "MB")
    ctx.record("bytes_baseline_pyc", "baseline: bytecode", [parts["baseline"]["bytecode"]], "MB")
    ctx.record("bytes_baseline_tests", "baseline: test suites", [parts["baseline"]["tests"]], "MB")

    ctx.record("build_cold_baseline", "cold build: baseline", cold["baseline"])
    ctx.record("build_cold_prod", "cold build: prod", cold["prod"], baseline="build_cold_baseline")
    ctx.record("build_cold_dev", "cold build: dev", cold["dev"], baseline="build_cold_baseline")
    ctx.record(
        "build_warm_prod",
        "warm build: prod, bootstrap changed",
        warm["prod"],
        baseline="build_cold_prod",
        goal="< 15 s",
    )
    ctx.record(
        "build_warm_dev",
        "warm build: dev, bootstrap changed",
        warm["dev"],
        baseline="build_cold_dev",
        goal="< 15 s",
    )


COMPONENT_FLOOR = 10.0  # MB: smaller entries are summed as "the rest"


def _by_component(sizes: Dict[str, float], base_mb: float) -> Dict[str, float]:
    """The prod image by component, largest first: the base, every entry of the
    environment of at least COMPONENT_FLOOR MB, the rest of the environment."""
    env = sizes.pop("env")
    named = {name: mb for name, mb in sizes.items() if mb >= COMPONENT_FLOOR}
    ordered = dict(sorted(named.items(), key=lambda item: -item[1]))
    return {"base image": base_mb, **ordered, "the rest": env - sum(named.values())}


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())
