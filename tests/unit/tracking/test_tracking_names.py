"""The Python tracking API applies the names rule of conveyor.core.names."""

from __future__ import annotations

import unicodedata

import pytest

import conveyor as cv
from conveyor.core.errors import InvalidInputError
from conveyor.tracking.service import record_run
from conveyor.workspace import Workspace


def test_start_run_refuses_a_name_with_surrounding_whitespace(ws: Workspace) -> None:
    with pytest.raises(InvalidInputError, match="The run name 'fit ' must not start or end"):
        cv.start_run("fit ", project="names")
    assert cv.active_run() is None


def test_record_run_refuses_a_project_differing_only_in_case(ws: Workspace) -> None:
    with record_run(ws, "Flights", name="first"):
        pass
    with (
        pytest.raises(InvalidInputError, match="differs only in case"),
        record_run(ws, "flights", name="second"),
    ):
        pass
    assert [run.name for run in ws.stores.runs.list_runs("Flights")] == ["first"]


def test_record_run_stores_names_in_nfc(ws: Workspace) -> None:
    nfd = unicodedata.normalize("NFD", "équipe")
    with record_run(ws, nfd, experiment=nfd, name=nfd) as run:
        pass
    stored = ws.stores.runs.get_run(run.id)
    nfc = unicodedata.normalize("NFC", "équipe")
    assert (stored.project, stored.experiment, stored.name) == (nfc, nfc, nfc)


def test_log_bytes_refuses_an_artifact_name_outside_the_run(ws: Workspace) -> None:
    with (
        record_run(ws, "names", name="r") as run,
        pytest.raises(InvalidInputError, match="artifact name"),
    ):
        run.log_bytes("../../x", b"x")
    assert ws.stores.runs.get_run(run.id).artifacts == {}
