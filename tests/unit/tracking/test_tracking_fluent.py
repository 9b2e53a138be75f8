"""The familiar API: start_run as a context manager, nested runs, module-level logging."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

import conveyor as cv
from conveyor.core.entities import RunStatus
from conveyor.core.errors import ConflictError, InvalidInputError, NotFoundError
from conveyor.tracking.service import restore_artifact
from conveyor.workspace import Workspace


def test_with_block_writes_params_metrics_tags_and_finishes(ws: Workspace) -> None:
    with cv.start_run("try", project="churn", tags={"team": "risk"}) as run:
        assert cv.active_run() is run
        cv.log_param("lr", 0.1)
        cv.log_params({"depth": 6, "lr": 0.1})
        for step in range(5):
            cv.log_metric("loss", 1.0 / (step + 1), step=step)
        cv.log_metrics({"auc": 0.8, "f1": 0.6}, step=1)
        cv.set_tag("stage", "dev")
        cv.set_tags({"owner": "ana"})
    assert cv.active_run() is None
    stored = ws.stores.runs.get_run(run.id)
    assert stored.status is RunStatus.FINISHED and stored.ended_at is not None
    assert (stored.project, stored.experiment, stored.name) == ("churn", "default", "try")
    assert stored.params == {"lr": "0.1", "depth": "6"}
    assert stored.metrics == {"loss": 0.2, "auc": 0.8, "f1": 0.6}
    assert stored.tags == {"team": "risk", "stage": "dev", "owner": "ana"}
    history = ws.stores.runs.get_metric_history(run.id, "loss")
    assert [p.step for p in history] == [0, 1, 2, 3, 4]


def test_exception_in_block_persists_every_point_and_fails_the_run(ws: Workspace) -> None:
    with pytest.raises(RuntimeError, match="boom"), cv.start_run("crash") as run:
        for step in range(2500):  # two size flushes and 500 points still buffered
            cv.log_metric("loss", float(step), step=step)
        cv.log_param("seed", 7)
        raise RuntimeError("boom")
    stored = ws.stores.runs.get_run(run.id)
    assert stored.status is RunStatus.FAILED
    assert stored.params == {"seed": "7"}
    assert len(ws.stores.runs.get_metric_history(run.id, "loss")) == 2500


def test_nested_run_records_its_parent_and_inherits_project(ws: Workspace) -> None:
    with cv.start_run("parent", project="churn", experiment="hpo") as parent:
        with cv.start_run("child", nested=True) as child:
            assert cv.active_run() is child
            cv.log_metric("auc", 0.7)
        assert cv.active_run() is parent
    stored = ws.stores.runs.get_run(child.id)
    assert stored.parent_id == parent.id
    assert (stored.project, stored.experiment, stored.metrics) == ("churn", "hpo", {"auc": 0.7})


def test_starting_a_second_run_without_nested_is_refused(ws: Workspace) -> None:
    with cv.start_run("outer"), pytest.raises(InvalidInputError, match="nested=True"):
        cv.start_run("inner")


def test_end_run_ends_the_active_run_and_validates_status(ws: Workspace) -> None:
    run = cv.start_run("plain")
    cv.log_metric("x", 1.0)
    with pytest.raises(InvalidInputError, match="must be one of finished, failed. Got 'running'"):
        cv.end_run("running")
    ended = cv.end_run("failed")
    assert ended is not None and ended.status is RunStatus.FAILED and ended.metrics == {"x": 1.0}
    assert cv.active_run() is None and cv.end_run() is None
    assert run.end().status is RunStatus.FAILED  # ending again changes nothing


def test_logging_without_a_run_starts_one(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PROJECT", "from-env")
    cv.log_metric("auc", 0.5)
    run = cv.active_run()
    assert run is not None and run.run.project == "from-env"
    assert cv.end_run() is not None
    assert ws.stores.runs.get_run(run.id).metrics == {"auc": 0.5}


def test_param_conflict_is_raised_when_logged(ws: Workspace) -> None:
    with cv.start_run("p"):
        cv.log_param("lr", 0.1)
        with pytest.raises(ConflictError, match="'lr' .* is '0.1' and cannot become '0.2'"):
            cv.log_param("lr", 0.2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cv.log_metric("", 1.0), "metric key must be a non-empty string"),
        (lambda: cv.log_metric("m", "high"), "value of metric 'm' must be a real number"),  # type: ignore[arg-type]
        (lambda: cv.log_metric("m", 1.0, step=1.5), "step of metric 'm' must be an int"),  # type: ignore[arg-type]
        (lambda: cv.log_metric("m", 1.0, timestamp=3), "timestamp of metric 'm' must be a"),  # type: ignore[arg-type]
        (lambda: cv.log_param("", 1), "param key must be a non-empty string"),
    ],
)
def test_bad_input_is_refused_at_the_call(ws: Workspace, call: object, message: str) -> None:
    with cv.start_run("bad") as run:
        with pytest.raises(InvalidInputError, match=message):
            call()  # type: ignore[operator]
        assert run.buffer.pending == 0


def test_explicit_timestamp_and_nan_are_kept(ws: Workspace) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    with cv.start_run("t") as run:
        cv.log_metric("m", math.nan, step=3, timestamp=when)
    [point] = ws.stores.runs.get_metric_history(run.id, "m")
    assert point.timestamp == when and point.step == 3 and math.isnan(point.value)


def test_file_and_directory_artifacts_round_trip(ws: Workspace, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("auc 0.8")
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "roc.svg").write_text("<svg/>")
    (plots / "sub" / "pr.svg").write_text("<svg>pr</svg>")
    with cv.start_run("a") as run:
        cv.log_artifact(report)
        cv.log_artifact(plots, name="charts")
    artifacts = ws.stores.runs.get_run(run.id).artifacts
    assert sorted(artifacts) == ["charts/", "report.txt"]
    out = restore_artifact(ws, run.id, "charts/", tmp_path / "restored")
    assert (out / "roc.svg").read_text() == "<svg/>"
    assert (out / "sub" / "pr.svg").read_text() == "<svg>pr</svg>"
    restored = restore_artifact(ws, run.id, "report.txt", tmp_path / "r.txt")
    assert restored.read_text() == "auc 0.8"
    with pytest.raises(NotFoundError, match="has no artifact 'nope'; it has: \\['charts/'"):
        restore_artifact(ws, run.id, "nope", tmp_path / "x")


def test_missing_artifact_path_and_unknown_dataset_are_named(ws: Workspace, tmp_path: Path) -> None:
    with cv.start_run("a"):
        with pytest.raises(NotFoundError, match="artifact path .*missing.bin.* does not exist"):
            cv.log_artifact(tmp_path / "missing.bin")
        with pytest.raises(NotFoundError):
            cv.log_dataset("no-such-version")
