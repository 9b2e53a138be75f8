"""Names in the stores, on SQLite and PostgreSQL: one normal form, case-insensitive uniqueness,
and run artifact names that stay relative paths."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
import sqlalchemy as sa

from conveyor.core.errors import InvalidInputError
from conveyor.store.sql.database import Database
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.run_store import SqlRunStore
from conveyor.store.sql.tables import RegisteredModelRow

ARTIFACT = "sha256:" + "a" * 64
NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def _register(store: SqlModelStore, model: str) -> Any:
    return store.create_model_version(
        model, artifact=ARTIFACT, run_id=None, signature={}, lineage={}, metrics={}, actor="ci"
    )


def test_a_model_name_differing_only_in_case_is_refused(models: SqlModelStore) -> None:
    _register(models, "model")
    with pytest.raises(InvalidInputError, match=r"'Model' differs only in case .* 'model'"):
        _register(models, "Model")
    assert [mv.version for mv in models.list_model_versions("model")] == [1]
    assert models.list_model_versions("Model") == []


def test_nfc_and_nfd_spellings_are_one_model(models: SqlModelStore) -> None:
    first = _register(models, NFC)
    second = _register(models, NFD)
    assert (first.model, second.model) == (NFC, NFC)
    assert [mv.version for mv in models.list_model_versions(NFC)] == [1, 2]


@pytest.mark.parametrize(
    "name", ["model ", " model", pytest.param("m" * 10_000, id="10000-chars"), "a/b", "a\x00b"]
)
def test_a_bad_model_name_is_refused_and_nothing_is_written(
    models: SqlModelStore, database: Database, name: str
) -> None:
    with pytest.raises(InvalidInputError, match="The model name"):
        _register(models, name)
    with database.session(write=False) as session:
        assert session.scalars(sa.select(RegisteredModelRow)).all() == []


def test_the_database_keeps_name_keys_unique(models: SqlModelStore, database: Database) -> None:
    _register(models, "model")
    with pytest.raises(sa.exc.IntegrityError), database.engine.begin() as conn:
        conn.execute(
            sa.insert(RegisteredModelRow.__table__).values(
                name="MODEL", name_key="model", last_version=0, created_at=sa.func.now()
            )
        )


def test_run_names_are_normalised_and_projects_experiments_case_insensitive(
    runs: SqlRunStore,
) -> None:
    run = runs.create_run(NFD, "Training", NFD)
    assert (run.project, run.name) == (NFC, NFC)
    assert runs.create_run(NFC, "Training", "again").project == NFC
    with pytest.raises(InvalidInputError, match=r"project name 'CAFÉ' differs only in case"):
        runs.create_run("CAFÉ", "Training", "x")
    with pytest.raises(InvalidInputError, match=r"experiment name 'training' differs only"):
        runs.create_run(NFC, "training", "x")
    assert len(runs.list_runs(NFC)) == 2
    # Another project may use the same experiment name in another case.
    assert runs.create_run("other", "training", "x").experiment == "training"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "p "),
        pytest.param("experiment", "e" * 10_000, id="experiment-10000-chars"),
        ("name", " r"),
        ("project", "a/b"),
    ],
)
def test_a_bad_run_name_is_refused(runs: SqlRunStore, field: str, value: str) -> None:
    names = {"project": "p", "experiment": "e", "name": "r", field: value}
    kind = "run" if field == "name" else field
    with pytest.raises(InvalidInputError, match=f"The {kind} name"):
        runs.create_run(names["project"], names["experiment"], names["name"])
    assert runs.list_runs("p") == []


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a\x00b", "%2e%2e/x", "s3://b/k"])
def test_a_run_artifact_name_outside_its_folder_is_refused(runs: SqlRunStore, name: str) -> None:
    run = runs.create_run("p", "e", "r")
    with pytest.raises(InvalidInputError, match="artifact name"):
        runs.log_artifact(run.id, name, ARTIFACT)
    assert runs.get_run(run.id).artifacts == {}


def test_a_run_artifact_name_is_stored_in_normal_form(runs: SqlRunStore) -> None:
    run = runs.create_run("p", "e", "r")
    runs.log_artifact(run.id, f"./plots//{NFD}.png", ARTIFACT)
    runs.log_artifact(run.id, "model/", ARTIFACT)
    assert set(runs.get_run(run.id).artifacts) == {f"plots/{NFC}.png", "model/"}
