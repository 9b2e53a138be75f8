"""Command line: ``python -m benchmarks NAME [--quick] [--json] [--write-docs]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from benchmarks import (
    BenchmarkError,
    Result,
    autolog,
    batch_scoring,
    charts,
    cli_startup,
    ct,
    gate_bench,
    loop,
    serving,
    slow_log,
    tracking,
)
from benchmarks import drift as drift_bench
from benchmarks import monitoring as monitoring_bench
from benchmarks import training as training_bench

BENCHMARKS: dict[str, Callable[[bool], list[Result]]] = {
    "batch_scoring": batch_scoring.run,
    "autolog": autolog.run,
    "charts": charts.run,
    "cli_startup": cli_startup.run,
    "ct": ct.run,
    "drift": drift_bench.run,
    "gate": gate_bench.run,
    "loop": loop.run,
    "monitoring": monitoring_bench.run,
    "serving": serving.run,
    "slow_log": slow_log.run,
    "tracking": tracking.run,
    "training": training_bench.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="the benchmark to run")
    parser.add_argument("--quick", action="store_true", help="shorter runs, rougher figures")
    parser.add_argument("--json", action="store_true", help="only JSON lines on stdout")
    parser.add_argument(
        "--write-docs", action="store_true", help="loop: write its report to docs/loop.md"
    )
    args = parser.parse_args(argv)
    if args.write_docs and args.name != "loop":
        parser.error("--write-docs is only for the loop benchmark")
    try:
        if args.write_docs:
            results = loop.run(args.quick, write_docs=True)
        else:
            results = BENCHMARKS[args.name](args.quick)
    except BenchmarkError as exc:
        print(f"benchmark {args.name!r} could not run: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(json.dumps(result.to_dict()), flush=True)
    if not args.json:
        print(file=sys.stderr)
        print(f"{'metric':<24}{'conveyor':>12}{'peer':>12}{'ratio':>8}  unit", file=sys.stderr)
        for r in results:
            # results of one data set and policy (loop, ct) say which
            where = "/".join(
                str(w) for w in (getattr(r, "dataset", ""), getattr(r, "policy", "")) if w
            )
            print(
                f"{r.metric:<24}{r.conveyor:>12.2f}{r.peer:>12.2f}{r.ratio:>8.3f}  {r.unit}"
                f"  ({r.better} is better; peer: {r.peer_name})" + (f" [{where}]" if where else ""),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
