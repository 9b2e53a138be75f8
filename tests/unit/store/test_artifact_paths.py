"""Artifact names and paths stay inside the store root and the restore folder, however encoded."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from conveyor.config import Settings
from conveyor.core.errors import InvalidInputError, StoreError
from conveyor.store.fs import FsArtifactStore, check_artifact_name
from conveyor.tracking.service import MANIFEST_KIND, log_artifact_path, restore_artifact
from conveyor.workspace import Workspace

ESCAPES = {
    "dot-dot": "../outside.txt",
    "percent-encoded": "%2e%2e%2foutside.txt",
    "percent-encoded upper case": "sub/%2E%2E/%2E%2E/outside.txt",
    "double-encoded": "%252e%252e%252foutside.txt",
    "backslash": "..\\outside.txt",
    "absolute": "/tmp/outside.txt",
    "home": "~/outside.txt",
    "file URI": "file:///tmp/outside.txt",
    "drive": "C:\\outside.txt",
}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(Settings(home=tmp_path / "ws"))


@pytest.mark.parametrize("name", ESCAPES.values(), ids=ESCAPES.keys())
def test_check_artifact_name_refuses_every_escape(name):
    with pytest.raises(InvalidInputError, match="relative path inside its folder"):
        check_artifact_name(name)


def test_check_artifact_name_keeps_ordinary_names():
    assert check_artifact_name("plots/roc.png") == "plots/roc.png"
    assert check_artifact_name("./plots//roc.png/") == "plots/roc.png"
    assert check_artifact_name("100%.txt") == "100%.txt"


@pytest.mark.parametrize("name", ESCAPES.values(), ids=ESCAPES.keys())
def test_blob_store_refuses_escaping_digests(tmp_path, name):
    store = FsArtifactStore(str(tmp_path / "store"))
    for call in (store.get_bytes, store.exists, store.delete, store.local_path):
        with pytest.raises(InvalidInputError, match="digest"):
            call(name)
        with pytest.raises(InvalidInputError, match="digest"):
            call(f"sha256:{name}")


def test_blob_that_is_a_symlink_out_of_the_store_is_refused(tmp_path):
    store = FsArtifactStore(str(tmp_path / "store"))
    digest = store.put_bytes(b"inside")
    blob = store.local_path(digest)
    outside = tmp_path / "outside"
    outside.write_bytes(b"inside")  # even identical content is not read through the link
    blob.unlink()
    blob.symlink_to(outside)
    with pytest.raises(StoreError, match="outside the store root"):
        store.get_bytes(digest)
    with pytest.raises(StoreError, match="outside the store root"):
        store.local_path(digest)


@pytest.mark.parametrize("name", ESCAPES.values(), ids=ESCAPES.keys())
def test_logging_under_an_escaping_name_is_refused(ws, tmp_path, name):
    run = ws.stores.runs.create_run("p", "default", "r")
    source = tmp_path / "file.txt"
    source.write_text("x")
    with pytest.raises(InvalidInputError):
        log_artifact_path(ws, run.id, source, name)
    assert ws.stores.runs.get_run(run.id).artifacts == {}


@pytest.mark.parametrize("name", ESCAPES.values(), ids=ESCAPES.keys())
def test_restoring_a_manifest_with_an_escaping_path_writes_nothing_outside(ws, tmp_path, name):
    run = ws.stores.runs.create_run("p", "default", "r")
    blob = ws.stores.artifacts.put_bytes(b"planted")
    manifest = {"kind": MANIFEST_KIND, "files": {name: blob}}
    ws.stores.runs.log_artifact(
        run.id, "evil/", ws.stores.artifacts.put_bytes(orjson.dumps(manifest))
    )
    dest = tmp_path / "restore" / "here"
    with pytest.raises(StoreError, match="evil/"):
        restore_artifact(ws, run.id, "evil/", dest)
    planted = [p for p in tmp_path.rglob("*outside.txt")]
    assert planted == []
    assert (
        not Path("/tmp/outside.txt").exists() or Path("/tmp/outside.txt").read_bytes() != b"planted"
    )


def test_restoring_through_a_symlink_in_the_destination_is_refused(ws, tmp_path):
    run = ws.stores.runs.create_run("p", "default", "r")
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    log_artifact_path(ws, run.id, folder, "data")
    dest = tmp_path / "dest"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dest / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StoreError, match="outside the directory"):
        restore_artifact(ws, run.id, "data/", dest)
    assert os.listdir(elsewhere) == []


def test_logging_a_directory_with_a_symlink_out_of_it_is_refused(ws, tmp_path):
    run = ws.stores.runs.create_run("p", "default", "r")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / "leak.txt").symlink_to(secret)
    with pytest.raises(InvalidInputError, match="symlink"):
        log_artifact_path(ws, run.id, folder)
    assert ws.stores.runs.get_run(run.id).artifacts == {}
