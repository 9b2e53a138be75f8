"""An automatic promotion is a compare-and-swap against the production it was validated
against: an operator's rollback made while the gate validates is never undone by the gate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.core.entities import ModelVersion, PipelineStatus
from conveyor.pipeline.cycle import run_cycle
from conveyor.pipeline.gate import GateOutcome, gate_version, release, validate
from conveyor.registry.service import find_alias_version, promote, rollback
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace

from ..conftest import make_batch
from ..pipeline.test_watch_sequences import _bad
from .test_alias_paths import copy_of


def _two_releases(ws: Workspace, trained: ModelVersion) -> tuple[int, int]:
    first = trained.version
    promote(ws, "toy", first, reason="first release")
    second = copy_of(ws, trained).version
    promote(ws, "toy", second, reason="second release")
    return first, second


def _operator_rolls_back(
    operator: Workspace, validated_against: int, seen: list[GateOutcome]
) -> Callable[[GateOutcome], None]:
    def hook(outcome: GateOutcome) -> None:
        assert outcome.production == validated_against and outcome.passed, outcome.to_dict()
        seen.append(outcome)
        rollback(operator, "toy", reason="the release misbehaves")

    return hook


def _assert_conflict_kept_the_rollback(ws: Workspace, first: int, challenger: int) -> None:
    assert find_alias_version(ws, "toy") == first
    moves = ws.stores.models.list_audit_events("toy", alias="production")
    assert (moves[-1].action, moves[-1].actor, moves[-1].to_version) == (
        "rollback",
        "oncall",
        first,
    )
    assert challenger not in [e.to_version for e in moves]
    alerts = ws.stores.monitor.list_alerts("toy", kind="promotion_conflict")
    assert len(alerts) == 1 and f"v{challenger}" in alerts[0].message
    assert f"v{first}" in alerts[0].message
    gate = ws.stores.models.get_model_version("toy", challenger).metrics["gate"]
    assert gate["promoted"] is False and "moved" in gate["conflict"]


def test_a_rollback_while_the_gate_validates_is_not_undone(
    ws: Workspace, spec: ProjectSpec, trained: ModelVersion, as_actor: Callable[[str], Workspace]
) -> None:
    first, second = _two_releases(ws, trained)
    challenger = copy_of(ws, trained).version
    seen: list[GateOutcome] = []
    hook = _operator_rolls_back(as_actor("oncall"), second, seen)

    outcome = gate_version(ws, spec, challenger, before_promote=hook)

    assert len(seen) == 1
    assert outcome.passed and not outcome.promoted and outcome.conflict is not None
    assert outcome.to_dict()["conflict"] == outcome.conflict
    _assert_conflict_kept_the_rollback(ws, first, challenger)


def test_validation_and_promotion_as_two_steps_compare_and_swap(
    ws: Workspace, spec: ProjectSpec, trained: ModelVersion, as_actor: Callable[[str], Workspace]
) -> None:
    first, second = _two_releases(ws, trained)
    challenger = copy_of(ws, trained).version
    validated = validate(ws, spec, challenger)
    assert validated.outcome.production == second and validated.outcome.passed
    assert find_alias_version(ws, "toy") == second, "validation moves nothing"

    rollback(as_actor("oncall"), "toy", reason="the release misbehaves")
    outcome = release(ws, spec, validated)

    assert not outcome.promoted and outcome.conflict is not None
    _assert_conflict_kept_the_rollback(ws, first, challenger)
    # Validated again against the production the operator chose, it is promoted.
    assert gate_version(ws, spec, challenger).promoted
    assert find_alias_version(ws, "toy") == challenger


@pytest.mark.slow
def test_a_cycle_records_the_conflict_instead_of_promoting(
    ws: Workspace, spec: ProjectSpec, trained: ModelVersion, as_actor: Callable[[str], Workspace]
) -> None:
    first = trained.version
    promote(ws, "toy", first, reason="first release")
    # The second release learned nothing (shuffled labels), so the cycle's retrain passes the
    # gate against it whatever the noise of the test rows.
    second = _bad(ws, spec, seed=1)
    promote(ws, "toy", second, reason="second release")
    seen: list[GateOutcome] = []
    hook = _operator_rolls_back(as_actor("oncall"), second, seen)

    outcome = run_cycle(ws, spec, sources=[make_batch(4)], before_promote=hook)

    assert len(seen) == 1, outcome.steps
    challenger = seen[0].challenger
    assert not outcome.promoted
    assert outcome.run.status is PipelineStatus.BLOCKED
    assert outcome.steps["gate"]["promoted"] is False and outcome.steps["gate"]["conflict"]
    _assert_conflict_kept_the_rollback(ws, first, challenger)
