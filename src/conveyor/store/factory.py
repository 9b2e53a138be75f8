"""Turn a metadata database URL and an artifact URL into the set of stores a workspace uses."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from conveyor.store.base import (
    ArtifactStore,
    DatasetStore,
    ModelStore,
    MonitorStore,
    PipelineStore,
    RunStore,
)
from conveyor.store.fs import FsArtifactStore
from conveyor.store.http import HttpModelStore, HttpRunStore, close_clients, open_client
from conveyor.store.sql.database import Database
from conveyor.store.sql.dataset_store import SqlDatasetStore
from conveyor.store.sql.model_store import SqlModelStore
from conveyor.store.sql.monitor_store import SqlMonitorStore
from conveyor.store.sql.pipeline_store import SqlPipelineStore
from conveyor.store.sql.run_store import SqlRunStore


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store of one workspace, sharing one metadata database."""

    datasets: DatasetStore
    runs: RunStore
    models: ModelStore
    monitor: MonitorStore
    pipeline: PipelineStore
    artifacts: ArtifactStore
    database: Database


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(db_url: str) -> Database:
    """Return the process's :class:`Database` for ``db_url``, migrated to the newest schema.

    One engine (and connection pool) is kept per URL, so opening the same workspace again is
    cheap. The first open applies migrations, which is safe with several processes at once.

    Raises
    ------
    ConfigError
        If ``db_url`` is not an SQLite or PostgreSQL URL.
    StoreError
        If the database cannot be reached or migrated.
    """
    with _databases_lock:
        database = _databases.get(db_url)
        if database is None:
            database = Database(db_url)
            try:
                database.upgrade()
            except BaseException:
                database.dispose()
                raise
            _databases[db_url] = database
        return database


def open_stores(
    db_url: str,
    artifacts_url: str,
    *,
    tracking_uri: str | None = None,
    token: str | None = None,
    run_stale_after_s: float | None = None,
) -> Stores:
    """Open the stores of a workspace.

    Parameters
    ----------
    db_url : str
        The metadata database, e.g. ``sqlite:///.conveyor/meta.db`` or
        ``postgresql+psycopg://user@host/db``.
    artifacts_url : str
        The artifact root: a local path, ``file://...`` or an fsspec URL such as ``s3://...``.
    tracking_uri : str, optional
        A ``conveyor server`` URL (``http://host:port``): runs and models are then its
        :class:`~conveyor.store.http.HttpRunStore` and ``HttpModelStore``; the other stores
        stay on ``db_url``. Model artifacts are not uploaded: the server and its clients must
        share ``artifacts_url``.
    token : str, optional
        The server's bearer token, sent with every request.
    run_stale_after_s : float, optional
        Seconds without a heartbeat after which the run store ends a running run ``failed``
        (see :class:`~conveyor.store.sql.run_store.SqlRunStore`); None never does.

    Returns
    -------
    Stores
        The stores; the database is migrated and shared with other ``open_stores`` calls of
        the same URL in this process.

    Examples
    --------
    >>> import tempfile
    >>> home = tempfile.mkdtemp()
    >>> stores = open_stores(f"sqlite:///{home}/meta.db", f"{home}/artifacts")
    >>> stores.models.list_model_versions("churn")
    []
    """
    database = open_database(db_url)
    runs: RunStore = SqlRunStore(database, stale_after_s=run_stale_after_s)
    models: ModelStore = SqlModelStore(database)
    if tracking_uri:
        client = open_client(tracking_uri, token)
        runs, models = HttpRunStore(client), HttpModelStore(client)
    return Stores(
        datasets=SqlDatasetStore(database),
        runs=runs,
        models=models,
        monitor=SqlMonitorStore(database),
        pipeline=SqlPipelineStore(database),
        artifacts=FsArtifactStore(artifacts_url),
        database=database,
    )


def close_databases() -> None:
    """Dispose of every cached database engine (their connections close); for tests and exit."""
    with _databases_lock:
        for database in _databases.values():
            database.dispose()
        _databases.clear()
    close_clients()
