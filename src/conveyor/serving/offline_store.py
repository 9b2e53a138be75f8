"""The offline prediction table: one key-value contract, three backends.

``sqlite:///path/to/file.db``
    The default: a file in the project directory (WAL mode).
``postgresql://...`` (psycopg 3)
    Table ``conveyor_offline_<namespace>``.
``redis://host:port/db``, ``unix:///path/redis.sock``
    Keys ``conveyor:offline:<namespace>:<key>``.

An entry holds the output (raw and post-processed), the model version and when it was computed;
a call to :meth:`OfflineStore.put_many` is one transaction (SQLite, PostgreSQL) or one
``MULTI``/``EXEC`` pipeline (Redis), so an entry is always whole.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conveyor.core.errors import ConfigError, StoreError

__all__ = [
    "OfflineEntry",
    "OfflineStore",
    "PostgresOfflineStore",
    "RedisOfflineStore",
    "SqliteOfflineStore",
    "key_text",
    "open_offline_store",
]


@dataclass(frozen=True, slots=True)
class OfflineEntry:
    """One precomputed prediction: the output (JSON-ready), its model version and time."""

    key: str
    output: dict[str, Any]
    model_version: int
    computed_at: float
    """Seconds since the epoch."""

    def age_s(self, now: float | None = None) -> float:
        """Seconds since it was computed."""
        return (time.time() if now is None else now) - self.computed_at


class OfflineStore(Protocol):
    """A key-value table of :class:`OfflineEntry`; writes of one call are atomic."""

    def put_many(self, entries: Sequence[OfflineEntry]) -> None:
        """Insert or replace ``entries`` in one transaction."""

    def get_many(self, keys: Sequence[str]) -> dict[str, OfflineEntry]:
        """The stored entries of ``keys`` (absent keys are left out)."""

    def count(self) -> int:
        """How many keys the table holds."""

    def close(self) -> None:
        """Release connections."""


def key_text(value: Any) -> str:
    """The table key of an entity value: ``7``, ``7.0`` and ``"7"`` all become ``"7"``."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _encode(entry: OfflineEntry) -> bytes:
    return orjson.dumps(
        {"o": entry.output, "v": entry.model_version, "t": entry.computed_at},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _decode(key: str, blob: bytes | str) -> OfflineEntry:
    data = orjson.loads(blob)
    return OfflineEntry(key, data["o"], int(data["v"]), float(data["t"]))


def _safe_name(namespace: str) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    if not name:
        raise ConfigError(f"The offline namespace {namespace!r} has no usable character.")
    return name


class SqliteOfflineStore:
    """The offline table in a SQLite file (WAL; one connection per thread)."""

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.table = f"offline_{_safe_name(namespace)}"
        self._local = threading.local()
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
            " WITHOUT ROWID"
        )

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._local.con = con
        return con

    def put_many(self, entries: Sequence[OfflineEntry]) -> None:
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)",
                [(e.key, _encode(e)) for e in entries],
            )
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise StoreError(f"Writing offline predictions to {self.path} failed: {exc}") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, OfflineEntry]:
        found: dict[str, OfflineEntry] = {}
        con = self._con()
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = con.execute(
                f"SELECT key, value FROM {self.table} WHERE key IN ({marks})", part
            ).fetchall()
            found.update((k, _decode(k, v)) for k, v in rows)
        return found

    def count(self) -> int:
        return int(self._con().execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class PostgresOfflineStore:
    """The offline table in PostgreSQL (psycopg 3 through SQLAlchemy)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.table = f"conveyor_offline_{_safe_name(namespace)}"
        self.engine = sa.create_engine(
            make_url(url).set(drivername="postgresql+psycopg"), pool_pre_ping=True
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, value BYTEA NOT NULL)"
            )

    def put_many(self, entries: Sequence[OfflineEntry]) -> None:
        sql = sa.text(
            f"INSERT INTO {self.table} (key, value) VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        latest = {e.key: _encode(e) for e in entries}  # one row per key per statement
        try:
            with self.engine.begin() as conn:
                conn.execute(sql, [{"k": k, "v": v} for k, v in latest.items()])
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Writing offline predictions to PostgreSQL failed: {exc}") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, OfflineEntry]:
        sql = sa.text(f"SELECT key, value FROM {self.table} WHERE key = ANY(:keys)")
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"keys": list(keys)}).fetchall()
        return {k: _decode(k, bytes(v)) for k, v in rows}

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {self.table}").scalar_one())

    def close(self) -> None:
        self.engine.dispose()


class RedisOfflineStore:
    """The offline table in Redis: one string key per entity, written by pipelines."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis  # noqa: PLC0415 - optional backend, loaded on use

        self._redis_error = redis.RedisError
        self.client = redis.Redis.from_url(url)
        self.prefix = f"conveyor:offline:{_safe_name(namespace)}:"

    def put_many(self, entries: Sequence[OfflineEntry]) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            for e in entries:
                pipe.set(self.prefix + e.key, _encode(e))
            pipe.execute()
        except self._redis_error as exc:
            raise StoreError(f"Writing offline predictions to Redis failed: {exc}") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, OfflineEntry]:
        if not keys:
            return {}
        values = self.client.mget([self.prefix + k for k in keys])
        return {k: _decode(k, v) for k, v in zip(keys, values, strict=True) if v is not None}

    def count(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))

    def close(self) -> None:
        self.client.close()


def open_offline_store(url: str, *, namespace: str) -> OfflineStore:
    """The offline table at ``url`` (see the module docstring for the schemes).

    Raises
    ------
    ConfigError
        If the scheme is not one of sqlite, postgresql, redis, rediss or unix.
    """
    scheme = urlparse(url).scheme.lower()
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f"An offline SQLite URL looks like sqlite:///path. Got {url!r}.")
        return SqliteOfflineStore(Path("/" + path if url.startswith("sqlite:////") else path),
                                  namespace)  # fmt: skip
    if scheme.startswith("postgres"):
        return PostgresOfflineStore(url, namespace)
    if scheme in ("redis", "rediss", "unix"):
        return RedisOfflineStore(url, namespace)
    raise ConfigError(
        f"The offline table URL {url!r} has scheme {scheme!r}; allowed are sqlite, postgresql, "
        "redis, rediss and unix (a Redis socket)."
    )
