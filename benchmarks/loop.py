"""The loop on any data: real tables replayed through Conveyor's defaults under three policies.

``python -m benchmarks loop [--quick] [--write-docs]``. Each data set of
:mod:`benchmarks.loop_data` is replayed as :mod:`benchmarks.loop_replay` describes: a spec
drafted by ``conveyor init`` with no hand edits, then batch by batch in time order, each batch
scored by the production model before its labels are used (prequential), under ``static``
(the first model only), ``triggered`` (Conveyor's agent and its default triggers) and
``always`` (a forced cycle after every batch). ``--quick`` replays two data sets, shortened.

The goals, one result line each with ``goal`` and ``meets`` (per data set):

- ``first_model_batches``: replayed batches scored before a model was served; 0 means the
  first cycle served one;
- ``live_gap_vs_always``: how far the triggered policy's live metric is behind always-retrain,
  in AUC points (x100), or for a regression in per cent of always-retrain's RMSE; at most 1
  point, or 2 %;
- ``retrain_share``: the triggered policy's retrains over always-retrain's, at most 0.5;
- ``gain_over_static_after_drift`` (where a drift point is known): how far the triggered
  policy's live metric after the first drift point is above static's, in AUC points (or per
  cent of RMSE); at least 0.1;
- ``gate_stall_batches``: the longest stretch of batches from a challenger the gate refused
  although its own interval shows it better (lower end above 0) to the next promotion; at
  most 4.

The table (per data set and policy: live metric, retrains, batches and seconds to the first
served model, detection delay where the drift point is known) is printed and, with
``--write-docs``, written to ``docs/loop.md``.

One data set alone: ``python -c "from benchmarks.loop import run; run(False, names=['wage'])"``.
``CONVEYOR_BENCH_KEEP=DIR`` keeps the batch files, drafted specs, workspaces and server logs
under ``DIR`` instead of a temporary folder.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmarks import BenchmarkError, Result
from benchmarks.loop_data import LOADERS, QUICK, LoopData, Truth
from benchmarks.loop_docs import Outcome, render
from benchmarks.loop_replay import Policy, Trace, replay
from conveyor.core.errors import ConveyorError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "loop.md"
#: AUC points (x100) or per cent of RMSE; the goals of the issue.
GAP_GOAL, GAP_GOAL_RMSE, RETRAIN_SHARE_GOAL, STALL_GOAL, GAIN_GOAL = 1.0, 2.0, 0.5, 4.0, 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopResult(Result):
    """A result of one data set (and policy); named, so that none lands in ``goal``."""

    dataset: str = ""
    policy: str = ""


def _say(msg: str) -> None:
    print(f"loop: {msg}", file=sys.stderr, flush=True)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _difference(truth: Truth, mine: float | None, peer: float | None) -> float:
    """How far ``mine`` is ahead of ``peer``: AUC points, or per cent of ``peer``'s RMSE."""
    if mine is None or peer is None:
        return float("nan")
    if truth is Truth.REGRESSION:
        return 100.0 * (peer - mine) / peer if peer else float("nan")
    return 100.0 * (mine - peer)


def goals(data: LoopData, traces: Mapping[Policy, Trace]) -> list[Result]:
    """The goal results of one data set (see the module docstring)."""
    static, triggered, always = (traces[p] for p in Policy)
    unit = "% rmse" if data.truth is Truth.REGRESSION else "auc points"
    gap_goal = GAP_GOAL_RMSE if data.truth is Truth.REGRESSION else GAP_GOAL
    name = data.name

    def result(
        metric: str, unit_: str, value: float, peer_name: str, peer: float, **kw: Any
    ) -> Result:
        return LoopResult("loop", metric, unit_, value, peer_name, peer, dataset=name, **kw)

    # A policy that never served a model is not "close to" another one that did not either.
    served = triggered.first_served_batches is not None
    mine = triggered.live(data.truth) if served else None
    peer = always.live(data.truth) if always.first_served_batches is not None else None
    out = [
        result(
            "first_model_batches",
            "batches",
            _nan(triggered.first_served_batches),
            "goal",
            0.0,
            better="lower",
            goal=0.0,
            policy=Policy.TRIGGERED,
        ),
        result(
            "live_gap_vs_always",
            unit,
            -_difference(data.truth, mine, peer),
            "always",
            _nan(peer),
            better="lower",
            goal=gap_goal,
            policy=Policy.TRIGGERED,
        ),
        result(
            "retrain_share",
            "ratio",
            triggered.retrains / always.retrains if always.retrains else float("nan"),
            "always",
            float(always.retrains),
            better="lower",
            goal=RETRAIN_SHARE_GOAL,
            policy=Policy.TRIGGERED,
        ),
    ]
    if data.drift_points:
        start = data.drift_points[0]
        after = triggered.live(data.truth, start) if served else None
        out.append(
            result(
                "gain_over_static_after_drift",
                unit,
                _difference(data.truth, after, static.live(data.truth, start)),
                "static",
                _nan(static.live(data.truth, start)),
                better="higher",
                goal=GAIN_GOAL,
                policy=Policy.TRIGGERED,
            )
        )
    for trace in (triggered, always):
        stall = float("nan") if trace.error and not trace.records else float(trace.gate_stall())
        out.append(
            result(
                "gate_stall_batches",
                "batches",
                stall,
                "goal",
                STALL_GOAL,
                better="lower",
                goal=STALL_GOAL,
                policy=trace.policy,
            )
        )
    return out


def measurements(data: LoopData, traces: Mapping[Policy, Trace]) -> list[Result]:
    """The table's figures of one data set as results (no goal)."""
    always = traces[Policy.ALWAYS]
    better: Literal["higher", "lower"] = "lower" if data.truth is Truth.REGRESSION else "higher"
    metric = (
        "rmse"
        if data.truth is Truth.REGRESSION
        else ("roc_auc_macro" if data.truth is Truth.MULTICLASS else "roc_auc")
    )
    out: list[Result] = []
    for policy, trace in traces.items():
        out.append(
            LoopResult(
                "loop",
                f"live_{metric}",
                metric,
                _nan(trace.live(data.truth)),
                "always",
                _nan(always.live(data.truth)),
                better,
                dataset=data.name,
                policy=policy,
            )
        )
        out.append(
            LoopResult(
                "loop",
                "retrains",
                "count",
                float(trace.retrains),
                "always",
                float(always.retrains),
                "lower",
                dataset=data.name,
                policy=policy,
            )
        )
        out.append(
            LoopResult(
                "loop",
                "first_model_s",
                "s",
                _nan(trace.first_served_s),
                "always",
                _nan(always.first_served_s),
                "lower",
                dataset=data.name,
                policy=policy,
            )
        )
    for i, delay in enumerate(traces[Policy.TRIGGERED].delays(data)):
        out.append(
            LoopResult(
                "loop",
                f"detection_delay_{i + 1}",
                "batches",
                _nan(delay),
                "always",
                1.0,
                "lower",
                dataset=data.name,
                policy=Policy.TRIGGERED,
            )
        )
    return out


def operating_curve(quick: bool) -> tuple[str, Any]:
    """The gate's operating curve (accept rate against true difference and test size), from
    ``conveyor.evaluation.calibration`` when it exists.

    Returns ``("available", markdown)``, or ``("not available", reason)`` while that module,
    its ``operating_curve`` or its ``curve_table`` is missing or refuses these arguments.
    """
    try:
        calibration = importlib.import_module("conveyor.evaluation.calibration")
    except ModuleNotFoundError:
        return "not available", "conveyor.evaluation.calibration does not exist yet"
    curve = getattr(calibration, "operating_curve", None)
    table = getattr(calibration, "curve_table", None)
    if curve is None or table is None:
        return "not available", "conveyor.evaluation.calibration has no operating_curve()"
    sizes = (200, 1000) if quick else (200, 500, 1000, 2000)
    try:
        tables = [
            table(curve(metric, test_sizes=sizes, n_sim=40 if quick else 100))
            for metric in ("roc_auc", "rmse")
        ]
    except (TypeError, ValueError, ConveyorError) as exc:
        return "not available", f"operating_curve() failed: {exc}"
    return "available", "\n\n".join(tables)


def run(
    quick: bool, *, write_docs: bool = False, names: Sequence[str] | None = None
) -> list[Result]:
    """Replay the data sets (``names``, default all, or two with ``quick``); see the module."""
    names = list(names or (QUICK if quick else LOADERS))
    unknown = sorted(set(names) - set(LOADERS))
    if unknown:
        raise BenchmarkError(f"Unknown data sets {unknown}; known: {sorted(LOADERS)}.")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    results: list[Result] = []
    keep = os.environ.get("CONVEYOR_BENCH_KEEP")
    with tempfile.TemporaryDirectory(prefix="conveyor-loop-") as tmp:
        base = Path(keep) if keep else Path(tmp)
        for i, name in enumerate(names):
            _say(f"[{i + 1}/{len(names)}] {name}: loading")
            outcome = _one(name, quick, base / f"{name}-{int(time.time())}")
            outcomes.append(outcome)
            if outcome.data is not None and len(outcome.traces) == len(Policy):
                results += goals(outcome.data, outcome.traces)
                results += measurements(outcome.data, outcome.traces)
            total = time.perf_counter() - started
            _say(f"{name}: done in {outcome.seconds:.0f}s (total {total:.0f}s)")
    curve = operating_curve(quick)
    _say(f"gate operating curve: {curve[0]}")
    text = render(outcomes, results, curve, quick=quick, seconds=time.perf_counter() - started)
    print(text, file=sys.stderr)
    if write_docs:
        partial = DOCS.with_name(f".{DOCS.name}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(DOCS)
        _say(f"wrote {DOCS}")
    return results


def _one(name: str, quick: bool, root: Path) -> Outcome:
    started = time.perf_counter()
    try:
        data = LOADERS[name](quick)
    except BenchmarkError as exc:
        _say(f"{name}: cannot load: {exc}")
        return Outcome(name, None, None, {}, str(exc), time.perf_counter() - started)
    _say(f"{name}: {len(data.batches)} batches, {data.rows:,} rows, {data.history} to start with")
    drafted, traces = replay(data, root, _say)
    by_policy = {t.policy: t for t in traces}
    error = None if drafted is not None else traces[0].error
    return Outcome(name, data, drafted, by_policy, error, time.perf_counter() - started)
