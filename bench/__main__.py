"""``python -m bench [SUITE ...]``: run the benchmark suites (all by default)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from bench import plots
from bench.harness import Context, load_results, update_docs, write_results


def suites() -> list:
    return sorted(path.stem[len("suite_") :] for path in Path(__file__).parent.glob("suite_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", help=f"default: all of {', '.join(suites())}")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "5")))
    parser.add_argument(
        "--no-docs",
        "--no-readme",
        dest="no_docs",
        action="store_true",
        help="do not update the table in docs/benchmarks.md",
    )
    parser.add_argument(
        "--redraw",
        action="store_true",
        help="measure nothing: draw the size and latency plots and the docs table again "
        "from bench/results.json",
    )
    args = parser.parse_args()
    if args.redraw:
        ctx = load_results()
        plots.draw(ctx)
        if not args.no_docs:
            update_docs(ctx)
        return 0
    unknown = sorted(set(args.suites) - set(suites()))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(suites())}")
    ctx = Context(repeat=args.repeat)
    for name in args.suites or suites():
        print(f"[{name}]", flush=True)
        ctx.suite = name
        importlib.import_module(f"bench.suite_{name}").run(ctx)
    write_results(ctx)
    plots.draw(ctx)
    if not args.no_docs:
        update_docs(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
