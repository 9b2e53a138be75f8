"""The gate step: challenger against production on the same newest rows; promote or alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.core.approval import ApprovalStatus
from conveyor.core.clock import new_id, utcnow
from conveyor.core.entities import Alert, AlertId, AlertSeverity, ModelVersion
from conveyor.core.signature import Signature, encode_frame
from conveyor.evaluation.gate import GateDecision, GatePolicy, compare_models, sanity_check
from conveyor.registry.approvals import find_approval, request_approval
from conveyor.registry.service import (
    PRODUCTION,
    find_alias_version,
    get_version,
    promote,
)
from conveyor.spec import ProjectSpec
from conveyor.training.service import label_vector, load_version, test_rows
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What the gate decided for one challenger, and whether production moved."""

    challenger: int
    production: int | None
    decision: GateDecision
    promoted: bool
    problems: tuple[str, ...] = ()
    awaiting_approval: bool = False

    @property
    def passed(self) -> bool:
        return self.decision.passed and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenger": self.challenger,
            "production": self.production,
            "promoted": self.promoted,
            "problems": list(self.problems),
            "awaiting_approval": self.awaiting_approval,
            "decision": self.decision.to_dict(),
        }


def policy_from_spec(spec: ProjectSpec) -> GatePolicy:
    g = spec.gate
    return GatePolicy(
        metric=g.metric,
        margin=g.margin,
        min_rows=g.min_rows,
        floor=g.floor,
        n_bootstrap=g.n_bootstrap,
    )


def gate_version(
    ws: Workspace, spec: ProjectSpec, version: int, *, promote_if_passed: bool = True
) -> GateOutcome:
    """Compare ``version`` with production on the challenger's held-out newest rows.

    Promotes when the challenger is not worse than production by more than the margin (lower
    bound of the paired bootstrap interval), clears the floor and passes the sanity checks;
    otherwise production stays and an alert says why. The decision is stored with the version.
    """
    model = spec.model_name
    challenger = get_version(ws, model, version)
    production = find_alias_version(ws, model, PRODUCTION)
    rows = test_rows(ws, spec, challenger)
    y = label_vector(rows, spec)
    signature = Signature.from_dict(challenger.signature)
    chal_pred = load_version(ws, model, version).predict_encoded(encode_frame(rows, signature))
    prod_pred = None
    if production is not None and production != version:
        prod_model = load_version(ws, model, production)
        prod_pred = prod_model.predict_encoded(encode_frame(rows, prod_model.signature))
    decision = compare_models(
        y, chal_pred, prod_pred, task=spec.task, policy=policy_from_spec(spec)
    )
    problems = tuple(sanity_check(challenger.metrics.get("valid", {}), spec.task))
    outcome = GateOutcome(
        challenger=version,
        production=production,
        decision=decision,
        promoted=False,
        problems=problems,
    )
    if outcome.passed and promote_if_passed and production != version:
        if spec.registry.require_approval and not _approved(ws, model, version):
            outcome = GateOutcome(
                challenger=version,
                production=production,
                decision=decision,
                promoted=False,
                problems=problems,
                awaiting_approval=True,
            )
        else:
            promote(
                ws,
                model,
                version,
                reason="passed the gate",
                evidence=outcome.to_dict(),
                require_approval=spec.registry.require_approval,
            )
            outcome = GateOutcome(
                challenger=version,
                production=production,
                decision=decision,
                promoted=True,
                problems=problems,
            )
    ws.stores.models.update_version_metrics(model, version, {"gate": outcome.to_dict()})
    if not outcome.passed:
        _alert_rejection(ws, spec, challenger, outcome)
    return outcome


def _approved(ws: Workspace, model: str, version: int) -> bool:
    """True if ``version`` is approved; otherwise ask for an approval unless one is open."""
    approval = find_approval(ws, model, version)
    if approval is None:
        request_approval(ws, model, version, reason="passed the gate")
        return False
    return approval.status is ApprovalStatus.APPROVED


def _alert_rejection(
    ws: Workspace, spec: ProjectSpec, challenger: ModelVersion, outcome: GateOutcome
) -> None:
    reasons = [*outcome.decision.reasons, *outcome.problems]
    ws.stores.monitor.add_alert(
        Alert(
            id=AlertId(new_id("al_")),
            project=spec.project,
            kind="gate_rejected",
            severity=AlertSeverity.WARNING,
            message=f"Challenger v{challenger.version} was rejected; production stays "
            f"v{outcome.production}: {' '.join(reasons)}",
            created_at=utcnow(),
            evidence=outcome.to_dict(),
        )
    )
