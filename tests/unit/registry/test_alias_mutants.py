"""The alias rules, pinned down to every field they return and every word that tells the user why.

Expected values are written out by hand: the exact audit evidence of a granted or refused move,
and the exact wording of the allowed list, so a changed key, a dropped field or a broken
message is caught.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.core.alias import allowed_aliases, check_alias_move, check_status_change
from conveyor.core.approval import Approval, ApprovalStatus
from conveyor.core.entities import ModelVersion, VersionStatus
from conveyor.core.errors import BlockedError, ConflictError, InvalidInputError

NOW = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def _version(status: VersionStatus = VersionStatus.READY) -> ModelVersion:
    return ModelVersion(
        model="toy",
        version=3,
        artifact="sha256:" + "0" * 64,
        run_id=None,
        created_at=NOW,
        status=status,
    )


def _approval(status: ApprovalStatus, *, decided_at: datetime | None = NOW) -> Approval:
    return Approval(
        model="toy",
        version=3,
        status=status,
        requested_by="alice",
        requested_at=NOW,
        request_reason="better recall",
        decided_by="bob",
        decided_at=decided_at,
        decision_reason="checked the slices",
    )


def test_the_allowed_list_is_quoted_and_comma_separated() -> None:
    assert allowed_aliases() == "'production', 'candidate', 'challenger', 'staging', 'shadow'"


def test_a_granted_move_records_the_whole_approval() -> None:
    evidence = check_alias_move(
        "production", _version(), _approval(ApprovalStatus.APPROVED), require_approval=True
    )
    assert evidence == {
        "approval": {
            "approved_by": "bob",
            "approved_at": "2026-01-01T12:30:00+00:00",
            "reason": "checked the slices",
            "requested_by": "alice",
        }
    }


def test_an_approval_without_a_decision_time_records_none() -> None:
    approval = _approval(ApprovalStatus.APPROVED, decided_at=None)
    evidence = check_alias_move("production", _version(), approval, require_approval=True)
    assert evidence["approval"]["approved_at"] is None


def test_a_move_without_a_request_names_the_missing_request() -> None:
    with pytest.raises(BlockedError) as caught:
        check_alias_move("production", _version(), None, require_approval=True)
    assert caught.value.evidence == {"model": "toy", "version": 3, "approval": None}
    assert "the version has no approval request." in str(caught.value)
    assert "conveyor models request-approval 3" in str(caught.value)


@pytest.mark.parametrize("status", [ApprovalStatus.PENDING, ApprovalStatus.REJECTED])
def test_a_refused_move_names_the_approval_state_and_requester(status: ApprovalStatus) -> None:
    with pytest.raises(BlockedError) as caught:
        check_alias_move("production", _version(), _approval(status), require_approval=True)
    assert caught.value.evidence == {"model": "toy", "version": 3, "approval": status.value}
    assert f"an approval that is {status.value} (requested by alice)" in str(caught.value)


@pytest.mark.parametrize("alias", ["candidate", "challenger", "staging", "shadow"])
def test_other_aliases_need_no_approval(alias: str) -> None:
    assert check_alias_move(alias, _version(), None, require_approval=True) == {}


def test_an_archived_version_message_names_version_model_and_alias() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_alias_move(
            "candidate", _version(VersionStatus.ARCHIVED), None, require_approval=False
        )
    message = str(caught.value)
    assert "Version 3 of 'toy' is archived and cannot take the alias 'candidate'" in message
    assert "conveyor models restore 3" in message


@pytest.mark.parametrize("aliases", [["shadow", "production"], ["candidate"]])
def test_a_version_with_aliases_is_not_archived(aliases: list[str]) -> None:
    with pytest.raises(ConflictError) as caught:
        check_status_change("toy", 3, VersionStatus.ARCHIVED, aliases)
    assert f"the alias(es) {', '.join(sorted(aliases))} point at it" in str(caught.value)
    assert "Version 3 of 'toy' cannot be archived" in str(caught.value)


def test_a_version_without_aliases_may_be_archived() -> None:
    assert check_status_change("toy", 3, VersionStatus.ARCHIVED, []) is None


@pytest.mark.parametrize("status", [VersionStatus.READY, VersionStatus.BLOCKED])
def test_a_version_with_aliases_may_take_another_status(status: VersionStatus) -> None:
    assert check_status_change("toy", 3, status, ["production"]) is None


@pytest.mark.parametrize(
    ("status", "approved"),
    [
        (ApprovalStatus.APPROVED, True),
        (ApprovalStatus.PENDING, False),
        (ApprovalStatus.REJECTED, False),
    ],
)
def test_only_an_approved_record_is_approved(status: ApprovalStatus, approved: bool) -> None:
    assert _approval(status).is_approved is approved
