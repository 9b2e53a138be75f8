"""Every alias move obeys the same rules on every local path: the Python API, `cv.Project`,
the store itself and the CLI; a manual promotion runs the gate's load-and-replay check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.core.entities import ModelVersion, VersionStatus
from conveyor.core.errors import (
    BlockedError,
    ConflictError,
    GateRejectedError,
    InvalidInputError,
)
from conveyor.project import Project
from conveyor.registry.approvals import approve, request_approval
from conveyor.registry.lifecycle import archive_version
from conveyor.registry.service import find_alias_version, register_version, set_alias
from conveyor.spec import ProjectSpec
from conveyor.workspace import Workspace


def copy_of(ws: Workspace, source: ModelVersion, artifact: bytes | None = None) -> ModelVersion:
    """Another version of the same real model (or of ``artifact``), with its lineage."""
    digest = source.artifact if artifact is None else ws.stores.artifacts.put_bytes(artifact)
    return register_version(
        ws,
        source.model,
        artifact=digest,
        run_id=source.run_id,
        signature=source.signature,
        lineage=source.lineage,
        metrics=source.metrics,
    )


def blob_path(ws: Workspace, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return Path(ws.settings.resolved_artifacts()) / "sha256" / hex_digest[:2] / hex_digest[2:]


def tampered_copy(ws: Workspace, source: ModelVersion) -> ModelVersion:
    """A version whose stored artifact was changed on disk after it was registered."""
    original = ws.stores.artifacts.get_bytes(source.artifact)
    version = copy_of(ws, source, original + b"\n")
    path = blob_path(ws, version.artifact)
    path.chmod(0o644)
    path.write_bytes(original.replace(b"0", b"1", 1) + b"\n")
    return version


def truncated_copy(ws: Workspace, source: ModelVersion) -> ModelVersion:
    """A version whose artifact was uploaded cut short (its digest is of the cut bytes)."""
    original = ws.stores.artifacts.get_bytes(source.artifact)
    return copy_of(ws, source, original[: len(original) // 2])


def _move(ws: Workspace, version: int, alias: str = "production", **kw: object) -> object:
    return ws.stores.models.move_alias(
        "toy", alias, version, expected_revision=None, action="set", actor="x", reason="r", **kw
    )


def test_every_rule_holds_for_the_python_api_and_the_store(
    ws: Workspace, spec: ProjectSpec, strict_spec: ProjectSpec, trained: ModelVersion
) -> None:
    project = Project(ws, spec)
    blocked, archived = copy_of(ws, trained), copy_of(ws, trained)
    ws.stores.models.set_version_status(
        "toy", blocked.version, VersionStatus.BLOCKED, actor="ops", reason="bad"
    )
    archive_version(ws, "toy", archived.version, reason="old")

    for move in (
        lambda: set_alias(ws, "toy", "prodution", trained.version, action="a", reason="r"),
        lambda: _move(ws, trained.version, alias="prodution"),
    ):
        with pytest.raises(InvalidInputError, match="'prodution' is not known"):
            move()
    for move in (
        lambda: project.promote(blocked.version, reason="r"),
        lambda: _move(ws, blocked.version),
    ):
        with pytest.raises(InvalidInputError, match="blocked and cannot become production"):
            move()
    for move in (
        lambda: project.promote(archived.version, reason="r"),
        lambda: _move(ws, archived.version, alias="candidate"),
    ):
        with pytest.raises(InvalidInputError, match="archived"):
            move()
    for move in (
        lambda: Project(ws, strict_spec).promote(trained.version, reason="r"),
        lambda: _move(ws, trained.version, require_approval=True),
    ):
        with pytest.raises(BlockedError, match="requires an approval"):
            move()
    assert find_alias_version(ws, "toy") is None

    first = project.promote(trained.version, reason="ship")
    with pytest.raises(ConflictError, match="revision"):
        set_alias(
            ws, "toy", "production", trained.version, action="a", reason="r", expected_revision=0
        )
    # The spec's default canary alias is one the registry takes.
    assert set_alias(ws, "toy", "candidate", blocked.version, action="a", reason="r").version
    assert ws.stores.models.find_alias("toy", "production") == first
    event = ws.stores.models.list_audit_events("toy", alias="production")[-1]
    assert event.evidence["infra"]["passed"] is True, "the release check is audited"


def test_approval_is_recorded_by_the_store_move(
    as_actor: object, strict_spec: ProjectSpec, trained: ModelVersion, ws: Workspace
) -> None:
    request_approval(ws, "toy", trained.version, reason="ready", actor="alice")
    approve(ws, "toy", trained.version, reason="reviewed", actor="bob")
    Project(ws, strict_spec).promote(trained.version, reason="ship")
    event = ws.stores.models.list_audit_events("toy", alias="production")[-1]
    assert event.evidence["approval"]["approved_by"] == "bob"


def test_a_manual_promotion_refuses_a_tampered_or_truncated_artifact(
    ws: Workspace, spec: ProjectSpec, trained: ModelVersion
) -> None:
    project = Project(ws, spec)
    project.promote(trained.version, reason="first")
    tampered, truncated = tampered_copy(ws, trained), truncated_copy(ws, trained)
    with pytest.raises(GateRejectedError, match="release check.*cannot be loaded") as caught:
        project.promote(tampered.version, reason="tampered")
    assert not caught.value.evidence["passed"]
    with pytest.raises(GateRejectedError, match="cannot be loaded"):
        project.promote(truncated.version, reason="truncated")
    assert find_alias_version(ws, "toy") == trained.version
    assert [
        e.to_version for e in ws.stores.models.list_audit_events("toy", alias="production")
    ] == [trained.version]


def test_a_version_whose_artifact_was_never_uploaded_is_not_registered(ws: Workspace) -> None:
    missing = "sha256:" + "ab" * 32
    with pytest.raises(InvalidInputError, match=f"{missing}: no such blob"):
        register_version(
            ws, "toy", artifact=missing, run_id=None, signature={}, lineage={}, metrics={}
        )
    assert ws.stores.models.list_model_versions("toy") == []


@pytest.mark.slow
def test_cli_promotions_obey_the_same_rules(
    tmp_path: Path, ws: Workspace, strict_spec: ProjectSpec, trained: ModelVersion
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "conveyor.yaml").write_text(strict_spec.to_yaml())
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    blocked, archived = copy_of(ws, trained), copy_of(ws, trained)
    ws.stores.models.set_version_status(
        "toy", blocked.version, VersionStatus.BLOCKED, actor="ops", reason="bad"
    )
    archive_version(ws, "toy", archived.version, reason="old")
    truncated = truncated_copy(ws, trained)

    def promote(version: int, code: int) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", "--home", str(tmp_path / "ws")]
            + ["promote", str(version), "--reason", "by hand"],
            cwd=project,
            env={**base, "CONVEYOR_ACTOR": "alice"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == code, (proc.stdout, proc.stderr)
        return proc.stderr

    assert "blocked and cannot become production" in promote(blocked.version, 1)
    assert "archived" in promote(archived.version, 1)
    assert "release check" in promote(truncated.version, 3)
    assert "requires an approval" in promote(trained.version, 3)
    request_approval(ws, "toy", trained.version, reason="ready", actor="alice")
    approve(ws, "toy", trained.version, reason="reviewed", actor="bob")
    promote(trained.version, 0)
    event = ws.stores.models.list_audit_events("toy", alias="production")[-1]
    assert (event.to_version, event.actor) == (trained.version, "alice")
    assert event.evidence["approval"]["approved_by"] == "bob"
    assert event.evidence["infra"]["passed"] is True
