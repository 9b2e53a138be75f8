"""Compare runs side by side: params (differences flagged), latest metrics and metric histories."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.core.entities import MetricPoint, Run, RunId
from conveyor.core.errors import InvalidInputError
from conveyor.reports import Report, line_chart
from conveyor.workspace import Workspace

__all__ = ["Comparison", "ParamRow", "MetricRow", "compare_runs", "write_comparison_html"]


@dataclass(frozen=True, slots=True)
class ParamRow:
    """One param across the runs: its value in each (None where a run lacks it)."""

    key: str
    values: tuple[str | None, ...]
    differs: bool


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One metric across the runs: each run's latest value (None where a run lacks it)."""

    key: str
    values: tuple[float | None, ...]
    differs: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """Runs side by side; every row's values are in the order of ``runs``.

    ``histories[key][i]`` is the series of metric ``key`` of ``runs[i]`` ordered by step.
    """

    runs: tuple[Run, ...]
    params: tuple[ParamRow, ...]
    metrics: tuple[MetricRow, ...]
    histories: Mapping[str, tuple[tuple[MetricPoint, ...], ...]]

    @property
    def differing_params(self) -> tuple[str, ...]:
        """Keys of the params whose values are not the same in every run."""
        return tuple(row.key for row in self.params if row.differs)

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form (run ids as column keys; NaN metrics as None)."""
        ids = [run.id for run in self.runs]
        return {
            "runs": [
                {"id": r.id, "name": r.name, "experiment": r.experiment, "status": str(r.status)}
                for r in self.runs
            ],
            "params": [
                {
                    "key": row.key,
                    "differs": row.differs,
                    "values": dict(zip(ids, row.values, strict=True)),
                }
                for row in self.params
            ],
            "metrics": [
                {
                    "key": row.key,
                    "differs": row.differs,
                    "values": {i: _finite(v) for i, v in zip(ids, row.values, strict=True)},
                }
                for row in self.metrics
            ],
            "histories": {
                key: {
                    i: [{"step": p.step, "value": _finite(p.value)} for p in series]
                    for i, series in zip(ids, per_run, strict=True)
                }
                for key, per_run in self.histories.items()
            },
        }


def compare_runs(ws: Workspace, run_ids: Sequence[str]) -> Comparison:
    """Read runs and line up their params, latest metrics and metric histories.

    Parameters
    ----------
    ws : Workspace
        The workspace holding the runs.
    run_ids : sequence of str
        Two or more distinct run ids, in the column order wanted.

    Returns
    -------
    Comparison
        Params and metrics sorted by key; a row ``differs`` when its values are not all equal
        (a run lacking the key counts as a different value).

    Raises
    ------
    InvalidInputError
        If fewer than two ids are given, or one repeats.
    NotFoundError
        If a run does not exist.

    Examples
    --------
    >>> comparison = compare_runs(ws, [a.id, b.id])  # doctest: +SKIP
    >>> comparison.differing_params  # doctest: +SKIP
    ('learning_rate',)
    """
    ids = [str(i) for i in run_ids]
    if len(ids) < 2:
        raise InvalidInputError(
            f"compare_runs() needs at least two run ids. Got {len(ids)}: {ids!r}."
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInputError(
            f"compare_runs() needs distinct run ids; {repeated!r} is given more than once."
        )
    store = ws.stores.runs
    runs = tuple(store.get_run(RunId(i)) for i in ids)
    param_keys = sorted({k for run in runs for k in run.params})
    metric_keys = sorted({k for run in runs for k in run.metrics})
    params = tuple(
        _param_row(key, tuple(run.params.get(key) for run in runs)) for key in param_keys
    )
    metrics = tuple(
        _metric_row(key, tuple(run.metrics.get(key) for run in runs)) for key in metric_keys
    )
    histories = {
        key: tuple(
            tuple(store.get_metric_history(run.id, key)) if key in run.metrics else ()
            for run in runs
        )
        for key in metric_keys
    }
    return Comparison(runs=runs, params=params, metrics=metrics, histories=histories)


def write_comparison_html(comparison: Comparison, path: Path | str) -> Path:
    """Write the comparison as a self-contained HTML page: tables, then a chart per metric.

    Each metric's chart has one line per run (step on x). Written atomically.

    Returns
    -------
    Path
        ``path``.
    """
    labels = run_labels(comparison.runs)
    report = Report("Run comparison", subtitle=", ".join(labels))
    report.add_heading("Runs")
    report.add_table(
        [
            {
                "run": label,
                "id": run.id,
                "experiment": run.experiment,
                "status": str(run.status),
                "started": run.started_at,
            }
            for label, run in zip(labels, comparison.runs, strict=True)
        ]
    )
    report.add_heading("Params")
    report.add_table(
        [
            {"param": row.key, "differs": "yes" if row.differs else "", **_cells(labels, row)}
            for row in comparison.params
        ],
        columns=["param", "differs", *labels],
        caption=f"{len(comparison.differing_params)} of {len(comparison.params)} params differ.",
    )
    report.add_heading("Latest metrics")
    report.add_table(
        [
            {"metric": row.key, "differs": "yes" if row.differs else "", **_cells(labels, row)}
            for row in comparison.metrics
        ],
        columns=["metric", "differs", *labels],
    )
    report.add_heading("Metric histories")
    for key, per_run in comparison.histories.items():
        series = {
            label: ([p.step for p in points], [p.value for p in points])
            for label, points in zip(labels, per_run, strict=True)
            if points
        }
        report.add_chart(line_chart(series, title=key, x_label="step", y_label=key))
    return report.write(path)


def run_labels(runs: Sequence[Run]) -> list[str]:
    """A short, unique column label per run: its name, with the end of its id when names repeat."""
    names = [run.name for run in runs]
    return [
        run.name if names.count(run.name) == 1 else f"{run.name} ({run.id[-8:]})" for run in runs
    ]


def _cells(labels: Sequence[str], row: ParamRow | MetricRow) -> dict[str, object]:
    return {label: value for label, value in zip(labels, row.values, strict=True)}


def _param_row(key: str, values: tuple[str | None, ...]) -> ParamRow:
    return ParamRow(key=key, values=values, differs=len(set(values)) > 1)


def _metric_row(key: str, values: tuple[float | None, ...]) -> MetricRow:
    # NaN != NaN, so compare a hashable stand-in: two runs both NaN do not differ.
    marks = {("nan" if v is not None and math.isnan(v) else v) for v in values}
    return MetricRow(key=key, values=values, differs=len(marks) > 1)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
