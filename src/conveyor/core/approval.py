"""Approvals of model versions: a request, then one decision, each with who, when and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ApprovalStatus(StrEnum):
    """Where a version's approval stands; only ``approved`` lets it become production."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Approval:
    """The approval record of one model version (one per version; a new request reopens it).

    The full history of requests and decisions is in the registry's audit log; this record is
    the current state.
    """

    model: str
    version: int
    status: ApprovalStatus
    requested_by: str
    requested_at: datetime
    request_reason: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None

    @property
    def is_approved(self) -> bool:
        return self.status is ApprovalStatus.APPROVED
