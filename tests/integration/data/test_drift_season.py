"""Seasonal drift on a real workspace: the same season's batch as the baseline at ingestion,
and seasonal features left out of the drift trigger."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from conveyor.core.clock import utcnow
from conveyor.core.entities import MonitorReport
from conveyor.data.drift import compute_drift_frames
from conveyor.data.service import ingest_batch
from conveyor.pipeline.triggers import collect_signals, decide
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.workspace import Workspace

from ..conftest import SPEC, make_batch


def test_ingestion_compares_a_batch_with_the_same_weeks_a_year_earlier(ws: Workspace) -> None:
    spec = parse_spec({**SPEC, "drift": {"season": "year"}})
    seqs = [ingest_batch(ws, spec, make_batch(week, rows=600)).version.seq for week in (0, 1, 2)]
    # week 53 starts 2025-01-06: a year earlier is mostly week 1 (2024-01-08 .. 01-14)
    later = ingest_batch(ws, spec, make_batch(53, rows=600)).version
    drift = later.profile["drift"]
    assert (drift["against"], drift["seq"]) == ("season", seqs[1])
    assert drift["spread_windows"] == 2
    assert ws.stores.datasets.get_dataset_version(later.id).profile["drift"]["seq"] == seqs[1]
    next_week = ingest_batch(ws, spec, make_batch(54, rows=600)).version.profile["drift"]
    assert (next_week["against"], next_week["seq"]) == ("season", seqs[2])
    # without a batch a year before, the previous batch is the baseline
    gap = ingest_batch(ws, spec, make_batch(60, rows=600)).version.profile["drift"]
    assert (gap["against"], gap["seq"]) == ("previous", seqs[2] + 2)


def _report(spec: ProjectSpec, n: int, shift: float) -> MonitorReport:
    reference = make_batch(0, rows=2000)
    current = make_batch(10 + n, rows=2000, shift=shift)
    drift = compute_drift_frames(
        reference, current, features=["hour", "distance", "carrier"], spec=spec.drift
    )
    end = utcnow() - timedelta(hours=5 - n)
    return MonitorReport(
        id=f"toy-r{n}",
        project="toy",
        model_version=None,
        window_start=end - timedelta(hours=1),
        window_end=end,
        created_at=end,
        stats={"rows": 2000, "drift": drift},
    )


def test_a_declared_seasonal_feature_does_not_fire_the_drift_trigger(ws: Workspace) -> None:
    spec = parse_spec({**SPEC, "triggers": {"drift_share": 0.3, "new_data_rows": None}})
    seasonal = parse_spec({**SPEC, **spec.model_dump(include={"triggers"}),
                           "drift": {"seasonal": ["distance"]}})  # fmt: skip
    for n in range(3):
        ws.stores.monitor.add_monitor_report(_report(spec, n, shift=2.0))
    now = utcnow()
    plain = dataclasses.replace(collect_signals(ws, spec, now=now), has_model=True)
    assert [w.drift_share for w in plain.windows] == [1 / 3] * 3
    assert [t.name for t in decide(spec.triggers, plain).fired] == ["drift"]
    season = dataclasses.replace(collect_signals(ws, seasonal, now=now), has_model=True)
    assert [w.drift_share for w in season.windows] == [0.0] * 3
    assert decide(seasonal.triggers, season).fired == ()


def test_windows_too_small_to_judge_do_not_count_towards_the_trigger(ws: Workspace) -> None:
    spec = parse_spec({**SPEC, "triggers": {"drift_share": 0.3, "new_data_rows": None}})
    reference, small = make_batch(0, rows=2000), make_batch(1, rows=40, shift=0.5)
    drift = compute_drift_frames(reference, small, features=["hour", "distance", "carrier"])
    assert drift["summary"]["insufficient"] == ["hour", "distance", "carrier"]
    end = utcnow() - timedelta(hours=1)
    ws.stores.monitor.add_monitor_report(
        MonitorReport("toy-small", "toy", None, end, end, end, {"drift": drift})
    )
    signals = dataclasses.replace(collect_signals(ws, spec, now=utcnow()), has_model=True)
    assert signals.windows[-1].drift_share is None
    assert decide(spec.triggers, signals).fired == ()
    assert drift["features"]["distance"]["current_count"] == 40
