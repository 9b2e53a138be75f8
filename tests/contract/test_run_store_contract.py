"""RunStore contract: runs, write-once params, metric series, tags, artifacts and datasets."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.core.entities import MetricPoint, RunId, RunStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.core.metric_batch import MetricBatch
from conveyor.store.sql.run_store import SqlRunStore
from conveyor.store.sql.tables import RunMetricRow

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "b" * 64


def _point(key: str, value: float, step: int, seconds: float = 0) -> MetricPoint:
    return MetricPoint(key=key, value=value, step=step, timestamp=T0 + timedelta(seconds=seconds))


def test_created_run_is_running_and_round_trips(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "baseline", "logreg", tags={"kind": "baseline"})
    assert run.status is RunStatus.RUNNING and run.ended_at is None
    assert run.started_at.utcoffset() == timedelta(0)
    assert run.tags == {"kind": "baseline"}
    assert runs.get_run(run.id) == run


def test_child_run_needs_an_existing_parent(runs: SqlRunStore) -> None:
    parent = runs.create_run("churn", "hpo", "study")
    child = runs.create_run("churn", "hpo", "trial-1", parent_id=parent.id)
    assert runs.get_run(child.id).parent_id == parent.id
    with pytest.raises(NotFoundError, match="Parent run 'nope'"):
        runs.create_run("churn", "hpo", "orphan", parent_id=RunId("nope"))


def test_params_are_write_once_and_a_conflict_writes_nothing(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_params(run.id, {"C": "1.0", "penalty": "l2"})
    runs.log_params(run.id, {"C": "1.0"})
    with pytest.raises(ConflictError, match="'C' of run .* is '1.0' and cannot become '2.0'"):
        runs.log_params(run.id, {"max_iter": "100", "C": "2.0"})
    assert runs.get_run(run.id).params == {"C": "1.0", "penalty": "l2"}


def test_metric_history_is_ordered_by_step_then_time(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_metrics(run.id, [_point("loss", 0.3, 2), _point("loss", 0.9, 0)])
    runs.log_metrics(run.id, [_point("loss", 0.5, 1, 5), _point("loss", 0.4, 1, 1)])
    runs.log_metrics(run.id, [_point("auc", 0.7, 0)])
    history = runs.get_metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.4), (1, 0.5), (2, 0.3)]
    assert history[0].timestamp == T0
    assert runs.get_metric_history(run.id, "missing") == []


def test_run_metrics_hold_the_latest_point_of_each_key(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_metrics(run.id, [_point("loss", 0.3, 5), _point("auc", 0.6, 0)])
    runs.log_metrics(run.id, [_point("loss", 0.9, 1), _point("auc", 0.7, 0, 10)])
    assert runs.get_run(run.id).metrics == {"loss": 0.3, "auc": 0.7}


def test_non_finite_metric_values_survive(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_metrics(
        run.id, [_point("a", math.nan, 0), _point("b", math.inf, 0), _point("c", -math.inf, 0)]
    )
    metrics = runs.get_run(run.id).metrics
    assert math.isnan(metrics["a"]) and metrics["b"] == math.inf and metrics["c"] == -math.inf
    [point] = runs.get_metric_history(run.id, "a")
    assert math.isnan(point.value)
    [point] = runs.get_metric_history(run.id, "b")
    assert point.value == math.inf


def test_bad_metric_points_are_rejected_before_writing(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    with pytest.raises(InvalidInputError, match="non-empty"):
        runs.log_metrics(run.id, [_point("ok", 1.0, 0), _point("", 1.0, 0)])
    with pytest.raises(InvalidInputError, match="must be an int"):
        runs.log_metrics(run.id, [MetricPoint("ok", 1.0, 1.5, T0)])  # type: ignore[arg-type]
    assert runs.get_metric_history(run.id, "ok") == []


def test_tags_artifacts_and_datasets(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r", tags={"a": "1"})
    runs.set_tags(run.id, {"a": "2", "b": "3"})
    runs.log_artifact(run.id, "model", DIGEST)
    runs.log_artifact(run.id, "report", "sha256:" + "c" * 64)
    runs.log_artifact(run.id, "model", "sha256:" + "d" * 64)
    runs.log_datasets(run.id, ["d2", "d1"])
    runs.log_datasets(run.id, ["d1", "d3"])
    stored = runs.get_run(run.id)
    assert stored.tags == {"a": "2", "b": "3"}
    assert stored.artifacts == {"model": "sha256:" + "d" * 64, "report": "sha256:" + "c" * 64}
    assert stored.datasets == ("d2", "d1", "d3")


def test_end_run_records_status_and_time(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    ended = runs.end_run(run.id, RunStatus.FAILED)
    assert ended.status is RunStatus.FAILED
    assert ended.ended_at is not None and ended.ended_at >= run.started_at
    assert runs.get_run(run.id) == ended


def test_list_runs_filters_by_project_and_experiment(runs: SqlRunStore) -> None:
    a = runs.create_run("churn", "baseline", "a")
    b = runs.create_run("churn", "tuned", "b")
    c = runs.create_run("churn", "baseline", "c")
    runs.create_run("fraud", "baseline", "x")
    assert [r.id for r in runs.list_runs("churn")] == [a.id, b.id, c.id]
    assert [r.id for r in runs.list_runs("churn", experiment="baseline")] == [a.id, c.id]
    assert runs.list_runs("none") == []


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.log_params(RunId("nope"), {"a": "1"}),
        lambda s: s.log_metrics(RunId("nope"), [_point("a", 1.0, 0)]),
        lambda s: s.set_tags(RunId("nope"), {"a": "1"}),
        lambda s: s.log_artifact(RunId("nope"), "m", DIGEST),
        lambda s: s.log_datasets(RunId("nope"), ["d"]),
        lambda s: s.end_run(RunId("nope"), RunStatus.FINISHED),
        lambda s: s.get_run(RunId("nope")),
        lambda s: s.get_metric_history(RunId("nope"), "a"),
    ],
)
def test_unknown_run_is_not_found(runs: SqlRunStore, call: object) -> None:
    with pytest.raises(NotFoundError, match="Run 'nope' does not exist"):
        call(runs)  # type: ignore[operator]


def test_concurrent_metric_writers_lose_nothing(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(10):
                runs.log_metrics(run.id, [_point(f"m{worker}", float(i), i)])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert runs.get_run(run.id).metrics == {f"m{w}": 9.0 for w in range(4)}
    assert all(len(runs.get_metric_history(run.id, f"m{w}")) == 10 for w in range(4))


def test_log_batch_writes_params_tags_and_metrics_together(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_batch(
        run.id,
        params={"lr": "0.1"},
        tags={"team": "risk"},
        metrics=[_point("loss", 0.5, 0), _point("loss", 0.4, 1)],
    )
    stored = runs.get_run(run.id)
    assert (stored.params, stored.tags, stored.metrics) == (
        {"lr": "0.1"},
        {"team": "risk"},
        {"loss": 0.4},
    )


def test_log_batch_with_a_param_conflict_writes_nothing(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    runs.log_params(run.id, {"lr": "0.1"})
    with pytest.raises(ConflictError, match="'lr' of run .* cannot become '0.2'"):
        runs.log_batch(
            run.id, params={"lr": "0.2"}, tags={"t": "x"}, metrics=[_point("loss", 0.5, 0)]
        )
    stored = runs.get_run(run.id)
    assert stored.tags == {} and stored.metrics == {}
    assert runs.get_metric_history(run.id, "loss") == []


def test_log_batch_of_nothing_still_checks_the_run(runs: SqlRunStore) -> None:
    with pytest.raises(NotFoundError, match="Run 'nope' does not exist"):
        runs.log_batch(RunId("nope"))


def test_ten_thousand_points_keep_order_values_and_timestamps(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    points = [_point("loss", 1.0 / (i + 1), i, i / 1000) for i in range(10_000)]
    points[7] = _point("loss", math.nan, 7, 0.007)
    runs.log_metrics(run.id, points)
    history = runs.get_metric_history(run.id, "loss")
    assert len(history) == 10_000
    assert [p.step for p in history] == list(range(10_000))
    assert history[123].value == 1.0 / 124 and math.isnan(history[7].value)
    assert history[-1].timestamp == T0 + timedelta(seconds=9.999)
    assert runs.get_run(run.id).metrics == {"loss": 1.0 / 10_000}


def test_a_metric_batch_is_stored_exactly_as_the_same_points(runs: SqlRunStore) -> None:
    # 1,500 points over three keys: inserts of several sizes, some timestamps on whole
    # seconds (no fraction) and some before 1970.
    points = [
        MetricPoint(f"k{i % 3}", i / 7, i // 3, T0 + timedelta(microseconds=i * 250_000 - 5))
        for i in range(1_500)
    ]
    points += [MetricPoint("old", 1.0, 0, datetime(1960, 1, 1, tzinfo=UTC))]
    as_points = runs.create_run("churn", "e", "points")
    as_batch = runs.create_run("churn", "e", "batch")
    runs.log_metrics(as_points.id, points)
    runs.log_batch(as_batch.id, metrics=MetricBatch.from_points(points))
    for key in ("k0", "k1", "k2", "old"):
        expected = [p for p in points if p.key == key]
        assert runs.get_metric_history(as_batch.id, key) == expected
        assert runs.get_metric_history(as_points.id, key) == expected
    assert runs.get_run(as_batch.id).metrics == runs.get_run(as_points.id).metrics


def test_bulk_timestamps_are_stored_as_the_orm_stores_them(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "r")
    stamps = [T0, T0.replace(microsecond=0), datetime(1999, 12, 31, 23, 59, 59, 7, tzinfo=UTC)]
    runs.log_metrics(run.id, [MetricPoint("bulk", 1.0, i, ts) for i, ts in enumerate(stamps)])
    with runs.database.session() as session:
        for i, ts in enumerate(stamps):
            session.add(RunMetricRow.from_entity(run.id, MetricPoint("orm", 1.0, i, ts)))
    query = "SELECT key, ts FROM run_metrics ORDER BY key, step"
    with runs.database.engine.connect() as conn:
        stored = conn.exec_driver_sql(query).all()
    assert [ts for key, ts in stored if key == "bulk"] == [ts for key, ts in stored if key == "orm"]
