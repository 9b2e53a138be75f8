"""PostgreSQL for the test suite: a database per test session and a fresh schema per test.

``scripts/test`` starts a throwaway server and sets ``CONVEYOR_TEST_PG_URL`` (e.g.
``postgresql+psycopg://conveyor@127.0.0.1:5432/conveyor_test``). A test marked ``postgres`` fails
when the variable is not set: a missing server is an error, never a silent skip. Leave those tests
out on purpose with ``-m "not postgres"``. The role needs CREATEDB to get a database of its own per
session; otherwise the given database is used, one schema per test.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

PG_URL_ENV = "CONVEYOR_TEST_PG_URL"
PG_MISSING = (
    f"{PG_URL_ENV} is not set: this test needs a PostgreSQL server. Run scripts/test, which "
    f"starts one, or deselect PostgreSQL tests with -m 'not postgres'."
)


def _admin_engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test session and dropped at its end."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.fail(PG_MISSING, pytrace=False)
    name = f"conveyor_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(base)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.DBAPIError:
        # No CREATEDB privilege: share the given database; tests still get their own schemas.
        admin.dispose()
        yield base
        return
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _close_conveyor_databases()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def pg_url(pg_database_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema (via ``search_path``), dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine(pg_database_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _close_conveyor_databases()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _close_conveyor_databases() -> None:
    """Close engines cached by ``open_stores`` so connections do not pile up across tests."""
    factory = sys.modules.get("conveyor.store.factory")
    if factory is not None:
        factory.close_databases()
