"""Multiclass and text binary labels through the training service, the registry and the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.core.errors import InvalidInputError
from conveyor.core.signature import Signature, encode_frame
from conveyor.project import Project
from conveyor.registry.cards import build_model_card, model_card_report
from conveyor.registry.service import PRODUCTION
from conveyor.spec import ProjectSpec, parse_spec
from conveyor.training.service import load_version
from conveyor.training.service import test_rows as held_out_rows
from conveyor.workspace import Workspace

KINDS = ("gold", "iron", "tin")


def kind_batch(week: int, rows: int = 700) -> pd.DataFrame:
    """Three text classes that depend on two numbers and a category, with overlap."""
    rng = np.random.default_rng(100 + week)
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(weeks=week)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    site = rng.choice(["north", "south"], rows)
    logits = np.column_stack(
        [2.5 * a, 2.5 * b * np.where(site == "north", 1.0, -1.0), 1.5 * a * b]
    ) + rng.gumbel(size=(rows, 3))
    return pd.DataFrame(
        {
            "sample_id": [f"w{week}-{i}" for i in range(rows)],
            "ts": start + pd.to_timedelta(np.sort(rng.uniform(0, 7 * 86400, rows)), unit="s"),
            "a": a,
            "b": b,
            "site": site,
            "kind": np.asarray(KINDS)[logits.argmax(axis=1)],
        }
    )


def answer_batch(week: int, rows: int = 700) -> pd.DataFrame:
    """A text binary label: "yes" on about a third of the rows, driven by ``a``."""
    frame = kind_batch(week, rows).drop(columns="kind")
    rng = np.random.default_rng(200 + week)
    frame["answer"] = np.where(frame["a"] + rng.normal(size=rows) > 0.6, "yes", "no")
    return frame


def _spec(task: str, label: str, **extra: object) -> ProjectSpec:
    return parse_spec(
        {
            "project": f"shapes-{task}",
            "task": task,
            "label": label,
            "timestamp": "ts",
            "entities": ["sample_id"],
            "categorical": ["site"],
            "training": {"window_batches": 4, "params": {"num_boost_round": 80}},
            # Serving multiclass models is covered by the serving tests; here the gate's
            # decision, sanity, slices and behaviour checks run on the model itself.
            "gate": {"min_rows": 100, "n_bootstrap": 100, "infra_check": False},
            **extra,
        }
    )


@pytest.fixture
def multiclass(ws: Workspace) -> Project:
    project = Project(ws, _spec("multiclass", "kind"))
    for week in range(3):
        project.ingest(kind_batch(week))
    return project


def test_multiclass_trains_registers_and_scores_class_probabilities(multiclass: Project) -> None:
    outcome = multiclass.train()
    version = outcome.version
    signature = Signature.from_dict(version.signature)
    assert signature.task == "multiclass"
    assert signature.classes == KINDS
    model = load_version(multiclass.ws, multiclass.spec.model_name, version.version)
    rows = held_out_rows(multiclass.ws, multiclass.spec, version)
    scores = model.predict_encoded(encode_frame(rows, model.signature))
    assert scores.shape == (len(rows), 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    test, prior = version.metrics["test"], version.metrics["baselines_test"]["baseline_prior"]
    assert set(test) >= {"roc_auc_macro", "log_loss", "accuracy", "macro_f1"}
    assert prior["roc_auc_macro"] == 0.5
    assert test["roc_auc_macro"] > 0.75 > prior["roc_auc_macro"]
    assert test["log_loss"] < prior["log_loss"]
    assert outcome.beats_baseline
    # The most probable class decodes to a class value.
    assert set(model.signature.labels.decode(scores.argmax(axis=1))) <= set(KINDS)
    card = build_model_card(multiclass.ws, multiclass.spec.model_name, version.version)
    assert card["purpose"]["classes"] == list(KINDS)
    assert card["purpose"]["positive_class"] is None


def test_multiclass_challenger_is_gated_against_production(multiclass: Project) -> None:
    first = multiclass.train().version.version
    opening = multiclass.gate(first)
    assert opening.promoted, opening.problems
    multiclass.ingest(kind_batch(3))
    second = multiclass.train().version.version
    outcome = multiclass.gate(second, promote_if_passed=False)
    decision = outcome.decision
    assert decision.metric == "roc_auc_macro"
    assert outcome.production == first
    assert decision.production is not None and decision.ci_low is not None
    assert decision.ci_low <= decision.delta <= decision.ci_high
    compared = {row["metric"] for row in outcome.checks["comparison"]}
    assert compared == {"roc_auc_macro", "log_loss", "accuracy", "macro_f1"}
    assert outcome.checks["test_metrics"]["roc_auc_macro"] > 0.75
    # Every check beyond the metric comparison (sanity, slices, behaviour) holds.
    assert outcome.problems == ()
    assert [b["passed"] for b in outcome.checks["behaviour"]] == [True]
    pointer = multiclass.ws.stores.models.find_alias(multiclass.spec.model_name, PRODUCTION)
    assert pointer is not None and pointer.version == first


@pytest.mark.parametrize(("declared", "positive"), [(None, "yes"), ("no", "no")])
def test_text_binary_label_trains_with_its_positive_class(
    ws: Workspace, declared: str | None, positive: str
) -> None:
    spec = _spec("binary", "answer", positive_class=declared)
    project = Project(ws, spec)
    for week in range(3):
        project.ingest(answer_batch(week))
    messages: list[str] = []
    version = project.train(progress=messages.append).version
    signature = Signature.from_dict(version.signature)
    assert signature.labels.positive == positive
    assert set(signature.classes) == {"yes", "no"}
    assert any(f"positive class of 'answer': {positive!r}" in m for m in messages)
    # Scores are P(positive): high where the positive class is likely.
    model = load_version(ws, spec.model_name, version.version)
    rows = held_out_rows(ws, spec, version)
    scores = model.predict_encoded(encode_frame(rows, model.signature))
    truth = (rows["answer"] == positive).to_numpy()
    assert scores[truth].mean() > scores[~truth].mean() + 0.2
    assert version.metrics["test"]["roc_auc"] > 0.7
    assert version.metrics["test"]["positive_rate"] == pytest.approx(truth.mean())
    card = build_model_card(ws, spec.model_name, version.version, spec=spec)
    assert card["purpose"]["positive_class"] == positive
    assert sorted(card["purpose"]["classes"]) == ["no", "yes"]
    html = model_card_report(card).render()
    assert f"positive class &#39;{positive}&#39;" in html or f"positive class '{positive}'" in html


def test_a_positive_class_that_is_not_a_value_is_refused(ws: Workspace) -> None:
    spec = _spec("binary", "answer", positive_class="maybe")
    project = Project(ws, spec)
    result = project.ingest(answer_batch(0))  # refused at the door: nothing to train on
    assert not result.report.passed
    assert any("'maybe'" in a.message for a in result.report.anomalies)
    with pytest.raises(InvalidInputError, match="No dataset versions"):
        project.train()


def test_a_multiclass_study_tunes_on_the_macro_auc(ws: Workspace) -> None:
    spec = _spec(
        "multiclass",
        "kind",
        training={
            "window_batches": 4,
            "params": {"num_boost_round": 40},
            "hpo": {"trials": 2, "cv_folds": 2, "space": {"num_leaves": {"int": [4, 16]}}},
        },
    )
    project = Project(ws, spec)
    for week in range(2):
        project.ingest(kind_batch(week))
    metrics = project.train().version.metrics
    assert metrics["hpo"]["trials"] == 2
    run = ws.stores.runs.get_run(metrics["hpo"]["run_id"])
    trials = [
        r for r in ws.stores.runs.list_runs(spec.project, experiment="hpo") if r.parent_id == run.id
    ]
    assert len(trials) == 2
    assert all(0.6 < t.metrics["roc_auc_macro"] <= 1.0 for t in trials)
    assert 0.6 < metrics["hpo"]["best_valid"] <= 1.0


def test_a_class_first_seen_in_the_newest_rows_is_a_class_of_the_model(ws: Workspace) -> None:
    project = Project(ws, _spec("multiclass", "kind"))
    for week in range(2):
        project.ingest(kind_batch(week))
    newest = kind_batch(2)
    newest.loc[newest.index[-20:], "kind"] = "lead"  # after the time split's cut: test rows
    project.ingest(newest)

    version = project.train().version
    signature = Signature.from_dict(version.signature)
    assert signature.classes == ("gold", "iron", "lead", "tin")
    model = load_version(ws, project.spec.model_name, version.version)
    proba = model.predict_encoded(encode_frame(newest, model.signature))
    assert proba.shape == (len(newest), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
