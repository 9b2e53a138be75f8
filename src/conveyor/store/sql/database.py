"""The metadata database: engine setup for SQLite and PostgreSQL, migrations and transactions.

SQLite runs in WAL mode with a 30 s busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers (threads or processes) queue for the write lock
instead of failing half-way with "database is locked". PostgreSQL is reached through psycopg 3.
JSON columns accept numpy scalars and store NaN and infinities as null.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from conveyor.core.errors import ConfigError, ConflictError, ConveyorError, StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "conveyor_write"


class Database:
    """A metadata database reached by an SQLAlchemy URL.

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/meta.db`` (the parent folder is created), ``sqlite://`` for an
        in-memory database, or ``postgresql+psycopg://user@host:port/db`` (``postgresql://``
        is read as psycopg 3). Query options pass through to the driver, e.g.
        ``?options=-csearch_path%3Dmyschema`` on PostgreSQL.

    Raises
    ------
    ConfigError
        If the URL is malformed or names a backend other than SQLite or PostgreSQL.

    Examples
    --------
    >>> db = Database("sqlite://")
    >>> db.upgrade()
    >>> db.current_revision() == db.head_revision()
    True
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._url = _normalise_url(url)
        self.dialect: str = self._url.get_backend_name()
        self.engine: Engine = _create_engine(self._url)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})

    def __repr__(self) -> str:
        return f"Database({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return self._url.render_as_string(hide_password=True)

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """Run one transaction: commit when the block ends, roll back if it raises.

        Parameters
        ----------
        write : bool, default True
            On SQLite a write session takes the write lock at ``BEGIN`` (``BEGIN IMMEDIATE``);
            a read session (``write=False``) takes none and must not write.

        Raises
        ------
        ConflictError
            If a unique key or other integrity constraint was violated by a concurrent writer.
        StoreError
            If the database failed; the original error is chained.
        """
        bind = self._write_engine if write else self.engine
        try:
            with Session(bind, expire_on_commit=False) as session, session.begin():
                yield session
        except ConveyorError:
            raise
        except IntegrityError as exc:
            raise ConflictError(
                f"A write to the metadata database at {self.safe_url} conflicted with "
                f"existing data or a concurrent writer: {exc.orig}"
            ) from exc
        except SQLAlchemyError as exc:
            detail = exc.orig if isinstance(exc, DBAPIError) else exc
            raise StoreError(f"The metadata database at {self.safe_url} failed: {detail}") from exc

    def lock(self, session: Session, key: str) -> None:
        """Serialise writers on ``key`` until ``session``'s transaction ends.

        PostgreSQL takes a transaction-scoped advisory lock; SQLite needs nothing more, since a
        write session already holds the database's single write lock.
        """
        if self.dialect == "postgresql":
            session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(key)})

    def upgrade(self) -> None:
        """Bring the schema to the newest migration; safe when many processes call it at once.

        PostgreSQL serialises callers with an advisory lock, SQLite with an exclusive lock on the
        sibling file ``<database>.lock``; whoever comes second finds the schema at head.

        Raises
        ------
        StoreError
            If a migration fails; the schema is left as it was (migrations run in one
            transaction).
        """
        try:
            with self._upgrade_file_lock(), self._write_engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k)"),
                        {"k": _lock_id("conveyor.migrations")},
                    )
                if _current_revision(conn) == self.head_revision():
                    return
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(
                f"Migrating the metadata database at {self.safe_url} failed: {exc}"
            ) from exc

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        try:
            with self.engine.connect() as conn:
                return _current_revision(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"Reading the metadata database at {self.safe_url} failed") from exc

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision shipped with this version of Conveyor."""
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _upgrade_file_lock(self) -> Iterator[None]:
        path = self._url.database
        if self.dialect != "sqlite" or not path or path == ":memory:":
            yield
            return
        with open(f"{path}.lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def upsert(
    session: Session,
    row_cls: type[Any],
    values: Mapping[str, Any],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    where: sa.ColumnElement[bool] | None = None,
) -> None:
    """Insert ``values``, or update the ``update`` columns of the row with the same ``keys``.

    One atomic ``INSERT ... ON CONFLICT DO UPDATE`` on both SQLite and PostgreSQL; with
    ``where``, an existing row is only updated when the condition holds.
    """
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(row_cls).values(**values)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: statement.excluded[name] for name in update},
            where=where,
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(statement)


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(
            f"The metadata database URL must be an SQLAlchemy URL such as "
            f"'sqlite:///.conveyor/meta.db'. Got {url!r} instead."
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigError(
        f"The metadata database URL must use 'sqlite' or 'postgresql'. "
        f"Got {parsed.render_as_string(hide_password=True)!r} instead."
    )


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, json_serializer=_dump_json)
    memory = not url.database or url.database == ":memory:"
    if not memory:
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if memory else None,
        json_serializer=_dump_json,
    )
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _dump_json(value: Any) -> str:
    """JSON for a column: NaN and infinities, which JSON cannot hold, become null."""
    return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    # numbers.* also admit numpy scalars, which the json module cannot write.
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would emit a plain BEGIN; we emit ours in "begin".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _lock_id(key: str) -> int:
    """A stable signed 64-bit id for an advisory lock."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
