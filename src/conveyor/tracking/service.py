"""Run tracking: params, metric series, tags and artifacts of a run, kept in the run store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from conveyor.core.clock import utcnow
from conveyor.core.entities import MetricPoint, Run, RunId, RunStatus
from conveyor.core.errors import InvalidInputError, NotFoundError, StoreError
from conveyor.core.names import check_artifact_name, check_run_artifact_name
from conveyor.tracking.heartbeat import RunHeartbeat
from conveyor.workspace import Workspace


@dataclass(frozen=True, slots=True)
class ActiveRun:
    """A run being recorded; every call writes through to the run store in one transaction."""

    ws: Workspace
    run: Run

    @property
    def id(self) -> RunId:
        return self.run.id

    def log_params(self, params: Mapping[str, object]) -> None:
        self.ws.stores.runs.log_params(self.run.id, {k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        now = utcnow()
        points = [
            MetricPoint(key=k, value=float(v), step=step, timestamp=now) for k, v in metrics.items()
        ]
        self.ws.stores.runs.log_metrics(self.run.id, points)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.ws.stores.runs.set_tags(self.run.id, dict(tags))

    def log_bytes(self, name: str, data: bytes) -> str:
        name = check_run_artifact_name(name)  # before the blob is written
        digest = self.ws.stores.artifacts.put_bytes(data)
        self.ws.stores.runs.log_artifact(self.run.id, name, digest)
        return digest

    def log_json(self, name: str, obj: object) -> str:
        return self.log_bytes(name, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))

    def log_datasets(self, dataset_ids: Sequence[str]) -> None:
        self.ws.stores.runs.log_datasets(self.run.id, list(dataset_ids))


@contextlib.contextmanager
def record_run(
    ws: Workspace,
    project: str,
    *,
    experiment: str = "default",
    name: str = "",
    parent_id: RunId | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[ActiveRun]:
    """Record a run; it ends ``finished``, or ``failed`` if the block raises.

    While the block runs, the run heartbeats every ``ws.settings.run_heartbeat_s`` (see
    :mod:`conveyor.tracking.heartbeat`), so a killed process leaves a run that the store
    ends ``failed`` instead of one ``running`` forever.

    Examples
    --------
    >>> with record_run(ws, "flights", name="try") as run:  # doctest: +SKIP
    ...     run.log_params({"lr": 0.1}); run.log_metrics({"auc": 0.7})
    """
    run = ws.stores.runs.create_run(
        project, experiment, name or experiment, parent_id=parent_id, tags=tags
    )
    active = ActiveRun(ws=ws, run=run)
    heartbeat = RunHeartbeat(ws.stores.runs, run.id, ws.settings.run_heartbeat_s).start()
    try:
        yield active
    except BaseException:
        heartbeat.stop()
        ws.stores.runs.end_run(run.id, RunStatus.FAILED)
        raise
    heartbeat.stop()
    ws.stores.runs.end_run(run.id, RunStatus.FINISHED)


MANIFEST_KIND = "conveyor.directory/v1"


def log_artifact_path(ws: Workspace, run_id: RunId, path: Path, name: str | None = None) -> str:
    """Store a local file or directory as an artifact of the run and return its digest.

    A file is stored as one content-addressed blob under ``name`` (default: the file name). A
    directory is stored file by file, plus a JSON manifest mapping each relative path to its
    blob; the run records the manifest under ``name + "/"`` (default: the directory name), so
    names ending in ``/`` are directories. A later call with the same name replaces it.

    Raises
    ------
    NotFoundError
        If ``path`` does not exist.
    InvalidInputError
        If ``path`` is neither a file nor a directory, ``name`` is not a safe relative path
        (see :func:`conveyor.core.names.check_artifact_name`), or the directory holds a symlink
        to a file outside it.

    Examples
    --------
    >>> log_artifact_path(ws, run.id, Path("plots"))  # doctest: +SKIP
    'sha256:…'
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"The artifact path {str(path)!r} of run {run_id!r} does not exist.")
    label = check_artifact_name(name if name is not None else path.name)
    if path.is_file():
        digest = ws.stores.artifacts.put_file(path)
        ws.stores.runs.log_artifact(run_id, label, digest)
        return digest
    if not path.is_dir():
        raise InvalidInputError(
            f"The artifact path {str(path)!r} must be a file or a directory. Got neither."
        )
    root = path.resolve()
    items = [item for item in sorted(path.rglob("*")) if item.is_file()]
    for item in items:
        if not item.resolve().is_relative_to(root):
            raise InvalidInputError(
                f"The artifact directory {str(path)!r} must hold only files inside it. Got "
                f"{str(item)!r}, a symlink to {str(item.resolve())!r}, instead."
            )
    files = {
        check_artifact_name(item.relative_to(path).as_posix()): ws.stores.artifacts.put_file(item)
        for item in items
    }
    manifest = {"kind": MANIFEST_KIND, "files": files}
    digest = ws.stores.artifacts.put_bytes(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))
    ws.stores.runs.log_artifact(run_id, f"{label}/", digest)
    return digest


def log_artifact_files(ws: Workspace, run_id: RunId, name: str, files: Mapping[str, bytes]) -> str:
    """Store in-memory files as one directory artifact ``name + "/"``; return its digest.

    The same layout as a directory given to :func:`log_artifact_path` (a blob per file and a
    JSON manifest), recorded with a single run-store write.

    Raises
    ------
    InvalidInputError
        If ``name`` or a file name is not a safe relative path (see
        :func:`conveyor.core.names.check_artifact_name`).

    Examples
    --------
    >>> log_artifact_files(ws, run.id, "model", {"model.json": b"{}"})  # doctest: +SKIP
    'sha256:…'
    """
    label = check_artifact_name(name)
    listed = {check_artifact_name(path): data for path, data in files.items()}
    digests = {path: ws.stores.artifacts.put_bytes(data) for path, data in sorted(listed.items())}
    manifest = {"kind": MANIFEST_KIND, "files": digests}
    digest = ws.stores.artifacts.put_bytes(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS))
    ws.stores.runs.log_artifact(run_id, f"{label}/", digest)
    return digest


def restore_artifact(ws: Workspace, run_id: RunId, name: str, dest: Path) -> Path:
    """Write the run's artifact ``name`` to ``dest`` (a file, or a directory for ``name/``).

    Raises
    ------
    NotFoundError
        If the run has no artifact ``name``; the message lists the ones it has.
    StoreError
        If a blob is corrupt, or a manifest names a path that is not a safe relative path
        (``..``, percent-encoded or not, absolute, a URL, a backslash) or that reaches outside
        ``dest`` through a symlink; nothing is written outside ``dest``.
    """
    artifacts = ws.stores.runs.get_run(run_id).artifacts
    if name not in artifacts:
        raise NotFoundError(
            f"Run {run_id!r} has no artifact {name!r}; it has: {sorted(artifacts) or 'none'}."
        )
    dest = Path(dest)
    blob = ws.stores.artifacts.get_bytes(artifacts[name])
    if not name.endswith("/"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
        return dest
    manifest = orjson.loads(blob)
    root = dest.resolve()
    for relative, digest in manifest["files"].items():
        try:
            safe = check_artifact_name(relative)
        except InvalidInputError as exc:
            raise StoreError(
                f"The manifest of artifact {name!r} of run {run_id!r} names {relative!r}: {exc}"
            ) from exc
        target = (root / safe).resolve()
        if not target.is_relative_to(root):
            raise StoreError(
                f"The manifest of artifact {name!r} of run {run_id!r} names {relative!r}, "
                "outside the directory it describes."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ws.stores.artifacts.get_bytes(digest))
    root.mkdir(parents=True, exist_ok=True)
    return root
