"""The gate step: challenger against production on the same newest rows; promote or alert.

In order, before any alias moves: both models score the challenger's held-out test rows; the
paired bootstrap decides "not worse" on the gate metric (other metrics get their intervals as
evidence, McNemar's test the accuracies); floors, sanity checks on validation and test scores,
slices, behavioural tests and the latency budget are checked; then the candidate is served by
the real online app and its stored sample requests are replayed (the infra check). Everything
measured is stored with the version: a JSON evidence artifact, an HTML evaluation report
artifact, and a summary in the version's ``gate`` metrics. A rejected candidate raises an
alert whose message gives every reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from conveyor.alerting.service import raise_alert
from conveyor.core.approval import ApprovalStatus
from conveyor.core.clock import utcnow
from conveyor.core.entities import AlertSeverity, AliasPointer, ModelVersion
from conveyor.core.errors import ConflictError, InvalidInputError
from conveyor.core.model import Predictor
from conveyor.core.schema import ColumnKind
from conveyor.core.signature import Signature, encode_frame
from conveyor.evaluation import (
    GateDecision,
    GatePolicy,
    check_floors,
    comparable_metrics,
    compare_models,
    compare_slices,
    evaluate_test_set,
    measure_latency,
    run_behaviour_tests,
    sanity_check,
)
from conveyor.pipeline.evaluation_report import REPORT_KEY, render_report_bytes
from conveyor.pipeline.infra_check import check_release, require_release_check
from conveyor.registry.approvals import find_approval, request_approval
from conveyor.registry.service import PRODUCTION, get_version, promote
from conveyor.spec import ProjectSpec
from conveyor.training.service import label_vector, load_version, scores_in, test_rows
from conveyor.workspace import Workspace

#: Test rows replayed by the infra check when a version stored no sample requests.
FALLBACK_SAMPLES = 50


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What the gate decided for one challenger, and whether production moved.

    ``problems`` are the reasons beyond the metric comparison (sanity, slices, behaviour,
    latency, infra) that block the challenger; ``checks`` summarises each check's result.
    """

    challenger: int
    production: int | None
    decision: GateDecision
    promoted: bool
    problems: tuple[str, ...] = ()
    awaiting_approval: bool = False
    checks: dict[str, Any] = field(default_factory=dict)
    production_revision: int | None = None
    conflict: str | None = None

    @property
    def passed(self) -> bool:
        return self.decision.passed and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenger": self.challenger,
            "production": self.production,
            "passed": self.passed,
            "promoted": self.promoted,
            "problems": list(self.problems),
            "awaiting_approval": self.awaiting_approval,
            "decision": self.decision.to_dict(),
            "checks": self.checks,
            "production_revision": self.production_revision,
            "conflict": self.conflict,
        }


def policy_from_spec(spec: ProjectSpec) -> GatePolicy:
    """The :class:`GatePolicy` of the project's ``gate:`` section."""
    g = spec.gate
    return GatePolicy(
        metric=g.metric,
        margin=g.margin,
        min_rows=g.min_rows,
        floor=g.floor,
        n_bootstrap=g.n_bootstrap,
        confidence=g.confidence,
    )


#: Called between the gate's validation and its promotion, with the validated outcome.
BeforePromote = Callable[["GateOutcome"], None]


@dataclass(frozen=True, slots=True)
class Validation:
    """The gate's checks of one challenger, before any alias moves (see :func:`validate`)."""

    outcome: GateOutcome
    evidence: dict[str, Any]


def gate_version(
    ws: Workspace,
    spec: ProjectSpec,
    version: int,
    *,
    promote_if_passed: bool = True,
    before_promote: BeforePromote | None = None,
) -> GateOutcome:
    """Compare ``version`` with production on the challenger's held-out newest rows.

    Promotes when the challenger is not worse than production by more than the margin (lower
    bound of the paired bootstrap interval), clears the floor, and passes the sanity, slice,
    behaviour, latency and infra checks; otherwise production stays and an alert says why.
    The promotion compares-and-swaps against the production pointer the checks ran against:
    if production moved meanwhile (an operator's rollback), it is refused, ``conflict`` says
    why and an alert is raised. The decision and its evidence are stored with the version (see
    the module docstring). ``before_promote`` is called between the checks and the promotion.
    """
    return release(ws, spec, validate(ws, spec, version), promote_if_passed, before_promote)


def validate(ws: Workspace, spec: ProjectSpec, version: int) -> Validation:
    """Run every check of the gate on ``version`` against the current production; move nothing.

    The outcome remembers the production version and alias revision it was validated
    against, which :func:`release` compares with before it promotes.
    """
    model = spec.model_name
    challenger = get_version(ws, model, version)
    pointer = ws.stores.models.find_alias(model, PRODUCTION)
    production = pointer.version if pointer else None
    rows = test_rows(ws, spec, challenger).reset_index(drop=True)
    signature = Signature.from_dict(challenger.signature)
    y = label_vector(rows, spec, signature.labels)
    chal_model = load_version(ws, model, version)
    chal_pred = chal_model.predict_encoded(encode_frame(rows, signature))
    prod_pred, prod_model = None, None
    if production is not None and production != version:
        prod_model = load_version(ws, model, production)
        prod_pred = scores_in(prod_model, rows, signature.labels)
    policy = policy_from_spec(spec)
    decision = compare_models(y, chal_pred, prod_pred, task=spec.task, policy=policy)
    evidence = _evidence(
        ws, spec, challenger, rows, y, (chal_model, prod_model), (chal_pred, prod_pred), decision
    )
    evidence.update(production=production if prod_pred is not None else None)
    evidence["decision"] = decision.to_dict()
    outcome = GateOutcome(
        challenger=version,
        production=production,
        decision=decision,
        promoted=False,
        problems=tuple(evidence["problems"]),
        checks=_summary(evidence),
        production_revision=pointer.revision if pointer else None,
    )
    return Validation(outcome, evidence)


def release(
    ws: Workspace,
    spec: ProjectSpec,
    validation: Validation,
    promote_if_passed: bool = True,
    before_promote: BeforePromote | None = None,
) -> GateOutcome:
    """Promote a validated challenger that passed, store the evidence and raise any alert.

    The promotion is a compare-and-swap against the production revision of ``validation``;
    a production moved since then is left where it is and the outcome records the conflict.
    """
    model = spec.model_name
    outcome, evidence = validation.outcome, validation.evidence
    version, production = outcome.challenger, outcome.production
    if before_promote is not None:
        before_promote(outcome)
    if outcome.passed and promote_if_passed and production != version:
        if spec.registry.require_approval and not _approved(ws, model, version):
            outcome = replace(outcome, awaiting_approval=True)
        else:
            try:
                promote(
                    ws,
                    model,
                    version,
                    reason="passed the gate",
                    evidence=outcome.to_dict(),
                    require_approval=spec.registry.require_approval,
                    expected_revision=outcome.production_revision,
                )
                outcome = replace(outcome, promoted=True)
            except ConflictError as exc:
                outcome = replace(outcome, conflict=_conflict_reason(ws, model, outcome, exc))
    evidence["passed"] = outcome.passed
    evidence["promoted"] = outcome.promoted
    evidence["conflict"] = outcome.conflict
    record = outcome.to_dict()
    record["evidence"] = ws.stores.artifacts.put_bytes(
        orjson.dumps(evidence, option=orjson.OPT_SERIALIZE_NUMPY)
    )
    record[REPORT_KEY] = ws.stores.artifacts.put_bytes(render_report_bytes(evidence))
    ws.stores.models.update_version_metrics(model, version, {"gate": record})
    if not outcome.passed:
        _alert_rejection(ws, spec, outcome)
    elif outcome.conflict is not None:
        _alert(ws, spec, "promotion_conflict", outcome.conflict, outcome)
    return outcome


def promote_version(ws: Workspace, spec: ProjectSpec, version: int, *, reason: str) -> AliasPointer:
    """Make ``version`` production by hand, after the gate's load-and-replay release check.

    The version is loaded from its artifact as the server loads it and its stored sample
    requests (else its test rows) are replayed through the serving app, as the gate's infra
    check does (skipped only when the project turns ``gate.infra_check`` off). The check is
    recorded in the audit event's evidence. The project's ``registry.require_approval``
    applies.

    Raises
    ------
    GateRejectedError
        If the version cannot be loaded or the replay fails; production stays.
    """
    model = spec.model_name
    evidence: dict[str, Any] = {}
    if spec.gate.infra_check:
        check = require_release_check(ws, model, version, **_release_settings(ws, spec, version))
        evidence["infra"] = check.to_dict()
    return promote(
        ws,
        model,
        version,
        reason=reason,
        evidence=evidence,
        require_approval=spec.registry.require_approval,
    )


def _conflict_reason(ws: Workspace, model: str, outcome: GateOutcome, exc: ConflictError) -> str:
    now = ws.stores.models.find_alias(model, PRODUCTION)
    where = f"v{now.version} (revision {now.revision})" if now else "no version"
    return (
        f"Challenger v{outcome.challenger} passed the gate against production "
        f"v{outcome.production} (revision {outcome.production_revision}), but production "
        f"moved to {where} while it was validated; it was not promoted and production stays "
        f"where it was put. Gate it again against the new production. ({exc})"
    )


def _evidence(
    ws: Workspace,
    spec: ProjectSpec,
    challenger: ModelVersion,
    rows: pd.DataFrame,
    y: np.ndarray,
    models: tuple[Predictor, Predictor | None],
    predictions: tuple[np.ndarray, np.ndarray | None],
    decision: GateDecision,
) -> dict[str, Any]:
    """Every check but the gate metric's decision; ``problems`` lists what blocks."""
    model, production = models
    ev = spec.evaluation
    chal_pred, prod_pred = predictions
    policy = policy_from_spec(spec)
    groups = {c: rows[c].to_numpy() for c in ev.slices if c in rows.columns}
    missing = [c for c in ev.slices if c not in rows.columns]
    kw: dict[str, Any] = {
        "groups": groups,
        "min_slice_rows": ev.min_slice_rows,
        "bins": ev.calibration_bins,
        "threshold": spec.serving.threshold,
    }
    evidence: dict[str, Any] = {
        "model": spec.model_name,
        "challenger": challenger.version,
        "at": utcnow().isoformat(),
        "evaluation": {
            "challenger": evaluate_test_set(spec.task, y, chal_pred, **kw).to_dict(),
            "production": None
            if prod_pred is None
            else evaluate_test_set(spec.task, y, prod_pred, **kw).to_dict(),
        },
    }
    problems = [f"The slice column {c!r} is not in the test rows." for c in missing]
    problems += sanity_check(challenger.metrics.get("valid", {}), spec.task)
    test_metrics = evidence["evaluation"]["challenger"]["metrics"]
    problems += check_floors(test_metrics, spec.gate.floors)
    on_test: dict[str, Any] = {"candidate": test_metrics}
    if prod_pred is None and challenger.metrics.get("baseline_test"):
        # A first model has no production to beat: it must beat the baseline on the test rows
        # too, since it may be served on fewer rows than a comparison needs.
        on_test["baseline"] = challenger.metrics["baseline_test"]
    problems += [
        p
        for p in sanity_check(on_test, spec.task, stage="test")
        if "undefined" not in p  # an undefined test score is already the decision's reason
    ]
    evidence["comparison"] = []
    evidence["slices"] = []
    if prod_pred is not None:
        evidence["comparison"] = _intervals(spec.task, y, chal_pred, prod_pred, decision, policy)
        if spec.gate.slice_tolerance is not None and groups:
            evidence["slices"], regressed = compare_slices(
                spec.task,
                y,
                chal_pred,
                prod_pred,
                groups,
                metric=decision.metric,
                min_rows=ev.min_slice_rows,
                tolerance=spec.gate.slice_tolerance,
            )
            problems += regressed
    predict = _frame_predictor(model)
    reference = None
    if production is not None and set(production.signature.names) <= set(rows.columns):
        reference = _frame_predictor(production)
    behaviour = run_behaviour_tests(
        predict,
        rows,
        ev,
        task=spec.task,
        numeric=_numeric(model.signature),
        labels=y,
        reference=reference,
    )
    evidence["behaviour"] = [b.to_dict() for b in behaviour]
    # A first model has no production whose own robustness it could be held to; a noise
    # limit no model of the data meets would leave nothing served, so it is recorded only.
    evidence["warnings"] = []
    for b in (b for b in behaviour if not b.passed):
        message = f"Behavioural test '{b.name}' failed: {b.detail}"
        if b.kind == "robustness" and reference is None:
            evidence["warnings"].append(
                f"{message} (no production to compare with: recorded, not blocking)"
            )
        else:
            problems.append(message)
    sample = rows[model.signature.names].iloc[: max(ev.latency_rows, 1)]
    evidence["latency"] = measure_latency(predict, sample, single_rows=ev.latency_rows)
    evidence["size_bytes"] = len(ws.stores.artifacts.get_bytes(challenger.artifact))
    budget = spec.gate.latency_p99_ms
    offline_p99 = evidence["latency"]["single_p99_ms"]
    # With the infra check on, the budget applies to the served p99 (what clients see).
    if budget is not None and not spec.gate.infra_check and offline_p99 > budget:
        problems.append(
            f"Single-row predictions took {offline_p99:.1f} ms at p99, over the {budget:g} ms "
            "budget."
        )
    evidence["infra"] = None
    if spec.gate.infra_check:
        infra = check_release(
            ws,
            spec.model_name,
            challenger.version,
            **_release_settings(ws, spec, challenger.version, rows),
        )
        evidence["infra"] = infra.to_dict()
        problems += [f"Infra check: {p}" for p in infra.problems]
    evidence["problems"] = problems
    return evidence


def _intervals(
    task: str,
    y: np.ndarray,
    chal: np.ndarray,
    prod: np.ndarray,
    decision: GateDecision,
    policy: GatePolicy,
) -> list[dict[str, Any]]:
    """The oriented difference and its interval for every metric that ranks models; the gate
    metric's comes from ``decision``, the others are evidence only (no floor, no row minimum)."""
    out = []
    for metric in comparable_metrics(task):
        if metric == decision.metric:
            found = decision
        else:
            other = replace(policy, metric=metric, floor=None, min_rows=1)
            found = compare_models(y, chal, prod, task=task, policy=other)
        values = found.to_dict()
        out.append(
            {
                "metric": metric,
                "challenger": values["challenger"],
                "production": values["production"],
                "difference": values["delta"],
                "ci_low": values["ci_low"],
                "ci_high": values["ci_high"],
                "margin": decision.margin if metric == decision.metric else None,
                "decides": metric == decision.metric,
            }
        )
    return out


def _release_settings(
    ws: Workspace, spec: ProjectSpec, version: int, rows: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The keywords of :func:`check_release` for the project; test rows replace missing
    sample requests (``rows``, else the version's own test rows)."""

    def fallback(model: Predictor) -> list[dict[str, Any]]:
        frame = rows
        if frame is None:
            try:
                frame = test_rows(ws, spec, get_version(ws, spec.model_name, version))
            except InvalidInputError:
                return []
        head = frame[model.signature.names].head(FALLBACK_SAMPLES)
        return list(json.loads(head.to_json(orient="records", date_format="iso")))

    return {
        "project": spec.project,
        "serving": spec.serving,
        "budget_ms": spec.gate.latency_p99_ms,
        "tolerance": spec.gate.infra_tolerance,
        "fallback": fallback,
    }


def _frame_predictor(model: Predictor) -> Callable[[pd.DataFrame], np.ndarray]:
    signature = model.signature

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_encoded(encode_frame(frame, signature)), dtype=np.float64)

    return predict


def _numeric(signature: Signature) -> list[str]:
    return [c.name for c in signature.inputs if c.kind is ColumnKind.NUMERIC]


def _summary(evidence: dict[str, Any]) -> dict[str, Any]:
    infra = evidence.get("infra")
    return {
        "comparison": evidence.get("comparison", []),
        "slices_regressed": [s for s in evidence.get("slices", []) if s["regressed"]],
        "behaviour": [
            {"name": b["name"], "passed": b["passed"]} for b in evidence.get("behaviour", [])
        ],
        "latency": evidence.get("latency"),
        "size_bytes": evidence.get("size_bytes"),
        "infra": None
        if infra is None
        else {k: infra[k] for k in ("passed", "max_abs_diff", "p50_ms", "p99_ms", "budget_ms")},
        "test_metrics": evidence["evaluation"]["challenger"]["metrics"],
        "warnings": evidence.get("warnings", []),
    }


def _approved(ws: Workspace, model: str, version: int) -> bool:
    """True if ``version`` is approved; otherwise ask for an approval unless one is open."""
    approval = find_approval(ws, model, version)
    if approval is None:
        request_approval(ws, model, version, reason="passed the gate")
        return False
    return approval.status is ApprovalStatus.APPROVED


def _alert_rejection(ws: Workspace, spec: ProjectSpec, outcome: GateOutcome) -> None:
    reasons = [*outcome.decision.reasons, *outcome.problems]
    message = (
        f"Challenger v{outcome.challenger} was rejected; production stays "
        f"v{outcome.production}: {' '.join(reasons)}"
    )
    _alert(ws, spec, "gate_rejected", message, outcome)


def _alert(ws: Workspace, spec: ProjectSpec, kind: str, message: str, outcome: GateOutcome) -> None:
    raise_alert(
        ws,
        spec,
        kind=kind,
        message=message,
        evidence=outcome.to_dict(),
        severity=AlertSeverity.WARNING,
    )
