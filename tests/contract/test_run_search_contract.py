"""RunStore.search_runs contract: filters, latest-metric semantics, ordering, paging, injection."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.core.entities import MetricPoint, Run, RunStatus
from conveyor.core.errors import InvalidInputError
from conveyor.store.sql.run_store import SqlRunStore
from conveyor.tracking.search import parse_filter, parse_order_by

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _point(key: str, value: float, step: int, seconds: float = 0) -> MetricPoint:
    return MetricPoint(key=key, value=value, step=step, timestamp=T0 + timedelta(seconds=seconds))


def _names(
    runs: SqlRunStore,
    text: str = "",
    *,
    order: str | None = None,
    project: str | None = "churn",
) -> list[str]:
    page = runs.search_runs(
        project=project,
        where=parse_filter(text),
        order_by=parse_order_by(order) if order else (),
        limit=1000,
    )
    return [run.name for run in page.runs]


def _run(
    runs: SqlRunStore,
    name: str,
    *,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    experiment: str = "training",
    project: str = "churn",
) -> Run:
    run = runs.create_run(project, experiment, name, tags=tags)
    if params:
        runs.log_params(run.id, params)
    if metrics:
        runs.log_metrics(run.id, [_point(k, v, 0) for k, v in metrics.items()])
    return run


@pytest.fixture
def zoo(runs: SqlRunStore) -> SqlRunStore:
    """Four runs of 'churn' (oldest first a, b, c, d) and one run of another project."""
    _run(runs, "train-a", params={"lr": "0.1"}, tags={"team": "x"}, metrics={"auc": 0.91})
    _run(runs, "train-b", params={"lr": "0.01"}, tags={"team": "y"}, metrics={"auc": 0.75})
    _run(runs, "Train-C", params={"lr": "0.1"}, tags={"team": "x"}, metrics={"auc": 0.85})
    _run(runs, "eval_d", params={"depth": "6"}, experiment="evaluation")
    _run(runs, "train-other", params={"lr": "0.1"}, metrics={"auc": 0.99}, project="fraud")
    return runs


def test_conjunction_of_metric_param_and_tag(zoo: SqlRunStore) -> None:
    text = "metrics.auc > 0.8 and params.lr = '0.1' and tags.team = 'x'"
    assert sorted(_names(zoo, text)) == ["Train-C", "train-a"]


def test_no_filter_returns_the_project_newest_first(zoo: SqlRunStore) -> None:
    assert _names(zoo) == ["eval_d", "Train-C", "train-b", "train-a"]
    assert set(_names(zoo, project=None)) == {
        "eval_d",
        "Train-C",
        "train-b",
        "train-a",
        "train-other",
    }


def test_or_and_parentheses(zoo: SqlRunStore) -> None:
    text = "(tags.team = 'y' or params.depth = '6') and experiment = 'training'"
    assert _names(zoo, text) == ["train-b"]
    assert sorted(_names(zoo, "tags.team = 'y' or params.depth = '6'")) == ["eval_d", "train-b"]


def test_a_run_lacking_the_key_never_matches(zoo: SqlRunStore) -> None:
    assert sorted(_names(zoo, "params.lr != '0.01'")) == ["Train-C", "train-a"]
    assert "eval_d" not in _names(zoo, "metrics.auc != 0.5")
    assert _names(zoo, "tags.missing = ''") == []


def test_metrics_compare_on_the_latest_value_by_step_then_time(runs: SqlRunStore) -> None:
    climbing = runs.create_run("churn", "e", "climbing")
    runs.log_metrics(climbing.id, [_point("auc", 0.95, 1), _point("auc", 0.6, 0)])
    falling = runs.create_run("churn", "e", "falling")
    runs.log_metrics(falling.id, [_point("auc", 0.95, 0), _point("auc", 0.6, 1)])
    late = runs.create_run("churn", "e", "same-step-later-time")
    runs.log_metrics(late.id, [_point("auc", 0.9, 3, 10), _point("auc", 0.5, 3, 1)])
    assert sorted(_names(runs, "metrics.auc > 0.8")) == ["climbing", "same-step-later-time"]
    assert _names(runs, "metrics.auc = 0.6") == ["falling"]


def test_a_nan_latest_value_matches_no_comparison(runs: SqlRunStore) -> None:
    run = runs.create_run("churn", "e", "diverged")
    runs.log_metrics(run.id, [_point("loss", 0.3, 0), _point("loss", math.nan, 1)])
    assert _names(runs, "metrics.loss < 1") == []
    assert _names(runs, "metrics.loss > 0") == []


def test_like_is_case_sensitive_and_ilike_is_not(zoo: SqlRunStore) -> None:
    assert sorted(_names(zoo, "attributes.name LIKE 'train-%'")) == ["train-a", "train-b"]
    assert sorted(_names(zoo, "attributes.name ILIKE 'train-%'")) == [
        "Train-C",
        "train-a",
        "train-b",
    ]
    assert _names(zoo, "name LIKE 'train-_'") == ["train-b", "train-a"]


def test_like_wildcards_can_be_escaped(runs: SqlRunStore) -> None:
    _run(runs, "a_b")
    _run(runs, "axb")
    _run(runs, "a*b")
    assert sorted(_names(runs, "name LIKE 'a_b'")) == ["a*b", "a_b", "axb"]
    assert _names(runs, r"name LIKE 'a\\_b'") == ["a_b"]
    assert _names(runs, "name LIKE 'a*b'") == ["a*b"]


def test_in_lists(zoo: SqlRunStore) -> None:
    assert sorted(_names(zoo, "params.lr IN ('0.01', '0.5')")) == ["train-b"]
    assert sorted(_names(zoo, "metrics.auc IN (0.91, 0.85)")) == ["Train-C", "train-a"]


def test_status_and_time_attributes(runs: SqlRunStore) -> None:
    first = _run(runs, "first")
    runs.end_run(first.id, RunStatus.FINISHED)
    second = _run(runs, "second")
    runs.end_run(second.id, RunStatus.FAILED)
    _run(runs, "third")
    assert _names(runs, "attributes.status = 'finished'") == ["first"]
    assert _names(runs, "status IN ('failed', 'running')") == ["third", "second"]
    cut = runs.get_run(second.id).started_at.isoformat()
    assert _names(runs, f"attributes.start_time >= '{cut}'") == ["third", "second"]
    assert _names(runs, f"attributes.start_time < '{cut}'") == ["first"]
    assert sorted(_names(runs, "attributes.end_time > '2000-01-01'")) == ["first", "second"]


def test_keys_with_dots_and_spaces(runs: SqlRunStore) -> None:
    _run(runs, "dotted", params={"learning rate": "0.1"}, metrics={"val.auc": 0.9})
    assert _names(runs, "metrics.`val.auc` > 0.5 and params.`learning rate` = '0.1'") == ["dotted"]


def test_order_by_metric_puts_runs_without_it_last(zoo: SqlRunStore) -> None:
    assert _names(zoo, order="metrics.auc DESC") == ["train-a", "Train-C", "train-b", "eval_d"]
    assert _names(zoo, order="metrics.auc") == ["train-b", "Train-C", "train-a", "eval_d"]


def test_order_by_param_then_attribute(zoo: SqlRunStore) -> None:
    # Equal params fall back to the next key, then newest first.
    assert _names(zoo, order="params.lr DESC, attributes.start_time") == [
        "train-a",
        "Train-C",
        "train-b",
        "eval_d",
    ]
    assert _names(zoo, order="attributes.start_time") == ["train-a", "train-b", "Train-C", "eval_d"]


def test_pages_cover_every_match_once_in_order(runs: SqlRunStore) -> None:
    for i in range(7):
        _run(runs, f"r{i}", metrics={"auc": i / 10})
    where = parse_filter("metrics.auc >= 0.1")
    order = parse_order_by("metrics.auc DESC")
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = runs.search_runs(
            project="churn", where=where, order_by=order, limit=2, page_token=token
        )
        seen += [run.name for run in page.runs]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert seen == ["r6", "r5", "r4", "r3", "r2", "r1"]
    assert pages == 3


def test_a_page_token_only_fits_its_own_query(runs: SqlRunStore) -> None:
    for i in range(3):
        _run(runs, f"r{i}")
    page = runs.search_runs(project="churn", limit=1)
    assert page.next_page_token is not None
    with pytest.raises(InvalidInputError, match="belongs to a different search"):
        runs.search_runs(project="other", limit=1, page_token=page.next_page_token)
    with pytest.raises(InvalidInputError, match="not one a run search returned"):
        runs.search_runs(project="churn", limit=1, page_token="not-a-token")


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_a_bad_limit_is_rejected(runs: SqlRunStore, limit: int) -> None:
    with pytest.raises(InvalidInputError, match=r"'limit' parameter of search_runs\(\)"):
        runs.search_runs(limit=limit)


@pytest.mark.parametrize(
    "attack",
    ["x' OR 1=1 --", "x'); DROP TABLE runs; --", '" OR ""="', "%' OR '1'='1"],
)
def test_an_injection_attempt_is_just_a_string(zoo: SqlRunStore, attack: str) -> None:
    quoted = attack.replace("\\", "\\\\").replace("'", "\\'")
    assert _names(zoo, f"params.lr = '{quoted}'") == []
    assert _names(zoo, f"tags.team = '{quoted}' or name = '{quoted}'") == []
    target = _run(zoo, "target", params={"lr": attack})
    assert _names(zoo, f"params.lr = '{quoted}'") == ["target"]
    assert zoo.get_run(target.id).params == {"lr": attack}
    assert len(_names(zoo)) == 5
