"""Schema review and quarantine release through the services, on real SQLite and files."""

from __future__ import annotations

import pytest

from conveyor.core.entities import BatchStatus
from conveyor.core.errors import ConflictError, InvalidInputError, QuarantinedError, SchemaError
from conveyor.data.service import (
    accept_batch_schema,
    diff_batch_schema,
    diff_schema_versions,
    get_schema_record,
    ingest_batch,
    release_batch,
    training_window,
)

from ..conftest import make_batch


def _new_carrier(week: int):
    frame = make_batch(week)
    frame.loc[frame.index[:400], "carrier"] = "ZZ"
    return frame.assign(gate=frame["hour"].round() % 7)


def test_accept_evolves_the_schema_and_release_revalidates_against_it(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    bad = ingest_batch(ws, spec, _new_carrier(1))
    assert bad.quarantined
    with pytest.raises(QuarantinedError, match="still fails validation against schema v1"):
        release_batch(ws, spec, bad.version.id)
    diff = diff_batch_schema(ws, spec, _new_carrier(1))
    changes = {(c.column, c.change) for c in diff.changes}
    assert {("carrier", "categories"), ("gate", "added")} <= changes
    record, accepted = accept_batch_schema(ws, spec, _new_carrier(1), reason="new carrier ZZ")
    assert (record.version, record.reason, record.author) == (2, "new carrier ZZ", ws.actor)
    assert "ZZ" in record.schema.column("carrier").categories
    assert record.schema.column("gate").nullable and accepted.to_version == 2
    assert diff_schema_versions(ws, spec).changes == accepted.changes
    again, nothing = accept_batch_schema(ws, spec, _new_carrier(1))
    assert again.version == 2 and nothing.is_empty
    outcome = release_batch(ws, spec, bad.version.id)
    assert outcome.version.status is BatchStatus.ACCEPTED and not outcome.overridden
    assert outcome.version.profile["row_count"] == 1500
    assert "re-validated" in outcome.version.report["status_changes"][-1]["note"]
    assert bad.version.id in {v.id for v in training_window(ws, spec)}
    with pytest.raises(ConflictError, match="only a quarantined batch"):
        release_batch(ws, spec, bad.version.id)


def test_release_by_override_records_the_reason(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    bad = ingest_batch(ws, spec, make_batch(1).rename(columns={"hour": "hr"}))
    with pytest.raises(InvalidInputError, match="blank reason"):
        release_batch(ws, spec, bad.version.id, reason="  ")
    outcome = release_batch(ws, spec, bad.version.id, reason="known rename, fixed upstream")
    assert outcome.overridden and not outcome.report.passed
    assert outcome.version.report["status_changes"][-1]["note"].endswith(
        "known rename, fixed upstream"
    )


def test_a_kind_change_cannot_be_accepted(ws, spec):
    ingest_batch(ws, spec, make_batch(0))
    text_hours = make_batch(1).assign(hour=lambda f: f["hour"].map(lambda h: f"h{int(h)}"))
    diff = diff_batch_schema(ws, spec, text_hours)
    assert diff.is_breaking and ("hour", "kind") in {(c.column, c.change) for c in diff.changes}
    with pytest.raises(SchemaError, match="'hour' is numeric in the schema and categorical"):
        accept_batch_schema(ws, spec, text_hours)
    assert get_schema_record(ws, spec).version == 1
