"""Comparing runs: params with differences flagged, latest metrics, histories and the HTML page."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.core.entities import RunId
from conveyor.core.errors import InvalidInputError, NotFoundError
from conveyor.tracking.compare import compare_runs, write_comparison_html
from conveyor.tracking.search import search_runs
from conveyor.tracking.service import record_run
from conveyor.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


def _train(ws: Workspace, name: str, params: dict[str, object], aucs: list[float]) -> RunId:
    with record_run(ws, "churn", experiment="training", name=name) as run:
        run.log_params(params)
        for step, auc in enumerate(aucs):
            run.log_metrics({"auc": auc, "loss": 1 - auc}, step=step)
    return run.id


def test_params_that_differ_are_flagged(ws: Workspace) -> None:
    a = _train(ws, "a", {"lr": 0.1, "depth": 6}, [0.7, 0.8])
    b = _train(ws, "b", {"lr": 0.05, "depth": 6, "seed": 1}, [0.6, 0.9])
    comparison = compare_runs(ws, [a, b])
    rows = {row.key: row for row in comparison.params}
    assert rows["lr"].values == ("0.1", "0.05") and rows["lr"].differs
    assert rows["depth"].values == ("6", "6") and not rows["depth"].differs
    assert rows["seed"].values == (None, "1") and rows["seed"].differs
    assert comparison.differing_params == ("lr", "seed")


def test_metrics_are_the_latest_values_and_histories_follow_the_run_order(ws: Workspace) -> None:
    a = _train(ws, "a", {}, [0.7, 0.8, 0.75])
    b = _train(ws, "b", {}, [0.6])
    comparison = compare_runs(ws, [b, a])
    assert [run.name for run in comparison.runs] == ["b", "a"]
    auc = next(row for row in comparison.metrics if row.key == "auc")
    assert auc.values == (0.6, 0.75) and auc.differs
    histories = comparison.histories["auc"]
    assert [p.value for p in histories[0]] == [0.6]
    assert [(p.step, p.value) for p in histories[1]] == [(0, 0.7), (1, 0.8), (2, 0.75)]


def test_equal_nan_metrics_do_not_differ(ws: Workspace) -> None:
    a = _train(ws, "a", {}, [math.nan])
    b = _train(ws, "b", {}, [math.nan])
    auc = next(row for row in compare_runs(ws, [a, b]).metrics if row.key == "auc")
    assert not auc.differs
    assert compare_runs(ws, [a, b]).to_dict()["metrics"][0]["values"] == {a: None, b: None}


def test_compare_needs_two_distinct_existing_runs(ws: Workspace) -> None:
    a = _train(ws, "a", {}, [0.5])
    with pytest.raises(InvalidInputError, match="at least two run ids. Got 1"):
        compare_runs(ws, [a])
    with pytest.raises(InvalidInputError, match="distinct run ids"):
        compare_runs(ws, [a, a])
    with pytest.raises(NotFoundError, match="Run 'nope' does not exist"):
        compare_runs(ws, [a, "nope"])


def test_html_has_one_chart_per_metric_with_a_line_per_run(ws: Workspace, tmp_path: Path) -> None:
    ids = [_train(ws, name, {"lr": lr}, [0.6, 0.7]) for name, lr in [("a", 0.1), ("b", 0.2)]]
    ids.append(_train(ws, "a", {"lr": 0.3}, [0.65]))
    path = write_comparison_html(compare_runs(ws, ids), tmp_path / "out" / "cmp.html")
    html = path.read_text()
    assert html.count("<svg") == 2  # auc and loss
    # Runs sharing a name are told apart by the end of their ids.
    assert f"a ({ids[0][-8:]})" in html and f"a ({ids[2][-8:]})" in html
    assert "1 of 1 params differ" in html
    assert not re.search(r"<script", html)


def test_search_runs_parses_the_filter_and_order(ws: Workspace) -> None:
    for name, auc in [("low", 0.6), ("high", 0.9), ("mid", 0.8)]:
        _train(ws, name, {"lr": 0.1}, [auc])
    page = search_runs(ws, "metrics.auc > 0.7 and params.lr = '0.1'", order_by=["metrics.auc"])
    assert [run.name for run in page.runs] == ["mid", "high"]
    assert page.next_page_token is None
    first = search_runs(ws, "", order_by=["metrics.auc DESC"], limit=2)
    assert [run.name for run in first.runs] == ["high", "mid"]
    rest = search_runs(
        ws, "", order_by=["metrics.auc DESC"], limit=2, page_token=first.next_page_token
    )
    assert [run.name for run in rest.runs] == ["low"] and rest.next_page_token is None
