"""The alias vocabulary and the rules of a move, as pure functions, and the spec's aliases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.core.alias import ALIASES, Alias, check_alias_move, parse_alias
from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import ModelVersion, VersionStatus
from conveyor.core.errors import BlockedError, ConfigError, InvalidInputError
from conveyor.registry import service
from conveyor.spec import parse_spec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE = {"project": "toy", "task": "binary", "label": "late"}


def _version(status: VersionStatus = VersionStatus.READY) -> ModelVersion:
    return ModelVersion(
        model="toy",
        version=3,
        artifact="sha256:" + "0" * 64,
        run_id=None,
        created_at=NOW,
        status=status,
    )


def _approval(status: ApprovalStatus) -> Approval:
    return Approval(
        model="toy",
        version=3,
        status=status,
        requested_by="alice",
        requested_at=NOW,
        decided_by="bob" if status is not ApprovalStatus.PENDING else None,
        decided_at=NOW if status is not ApprovalStatus.PENDING else None,
    )


def test_the_registry_and_the_spec_share_one_vocabulary() -> None:
    assert service.ALIASES == ALIASES == tuple(a.value for a in Alias)
    assert service.PRODUCTION == Alias.PRODUCTION == "production"
    spec = parse_spec({**BASE, "serving": {"canary": {}, "shadow": {}}})
    assert spec.serving.canary is not None and spec.serving.shadow is not None
    assert parse_alias(spec.serving.canary.alias) is Alias.CANDIDATE
    assert parse_alias(spec.serving.shadow.alias) is Alias.SHADOW


@pytest.mark.parametrize("section", ["canary", "shadow"])
def test_a_typo_in_a_served_alias_fails_when_the_spec_loads(section: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({**BASE, "serving": {section: {"alias": "canidate"}}})
    message = str(caught.value)
    assert f"serving.{section}.alias" in message and "'canidate'" in message
    assert "'candidate'" in message and "'shadow'" in message


def test_production_cannot_be_a_canary_or_a_shadow() -> None:
    with pytest.raises(ConfigError, match=r"serving\.canary\.alias.*other than 'production'"):
        parse_spec({**BASE, "serving": {"canary": {"alias": "production"}}})


def test_an_unknown_alias_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"'prodution' is not known.*'candidate'"):
        check_alias_move("prodution", _version(), None, require_approval=False)


@pytest.mark.parametrize("alias", ["production", "candidate", "shadow"])
def test_an_archived_version_takes_no_alias(alias: str) -> None:
    with pytest.raises(InvalidInputError, match="archived"):
        check_alias_move(alias, _version(VersionStatus.ARCHIVED), None, require_approval=False)


def test_a_blocked_version_may_be_a_candidate_but_never_production() -> None:
    blocked = _version(VersionStatus.BLOCKED)
    assert check_alias_move("candidate", blocked, None, require_approval=True) == {}
    with pytest.raises(InvalidInputError, match="blocked and cannot become production"):
        check_alias_move("production", blocked, None, require_approval=False)


@pytest.mark.parametrize("status", [None, ApprovalStatus.PENDING, ApprovalStatus.REJECTED])
def test_production_needs_an_approved_version_when_required(status: ApprovalStatus | None) -> None:
    approval = None if status is None else _approval(status)
    with pytest.raises(BlockedError, match="requires an approval"):
        check_alias_move("production", _version(), approval, require_approval=True)
    assert check_alias_move("production", _version(), approval, require_approval=False) == {}


def test_the_approval_is_returned_as_evidence() -> None:
    granted = check_alias_move(
        "production", _version(), _approval(ApprovalStatus.APPROVED), require_approval=True
    )
    assert granted["approval"]["approved_by"] == "bob"
    assert granted["approval"]["requested_by"] == "alice"
