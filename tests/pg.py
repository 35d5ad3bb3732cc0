"""Fresh PostgreSQL databases for tests, on the machine's local server (CI starts it), and the
product database fixtures the store tests share (import them: ``from tests.pg import db, pg_url``).

``db`` runs a test once on each database the product supports: SQLite in a temporary file, and the
test module's PostgreSQL database (``pg_url``, migrated once per module) with every table emptied
first (ids from 1). It uses the test module's own ``clock`` fixture."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest
import sqlalchemy as sa

from bot.db.engine import Database
from bot.db.models import metadata

PG_ADMIN_URL = os.environ.get("HANDOFF_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin():
    import psycopg2

    try:
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}\n"
            "The hand-off store tests need a running PostgreSQL (CI starts one); start it, or point "
            "HANDOFF_TEST_PG_ADMIN_URL at a server where this user may create databases.",
            pytrace=False,
        )
    conn.autocommit = True
    return conn


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database with a random name; dropped afterwards."""
    name = f"handoff_test_{secrets.token_hex(6)}"
    admin = _pg_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = _pg_admin()  # a fresh connection: the server may have restarted meanwhile
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


#: Every table of the product database (not the migrations' version table).
PRODUCT_TABLES = [table.name for table in metadata.sorted_tables]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the test module, migrated to the latest schema."""
    with fresh_pg_database() as url:
        first = Database(url)
        first.migrate()
        first.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path, clock) -> Iterator[Database]:
    """An empty product database on the module's ``clock``: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'product.db'}", clock=clock)
        database.migrate()
    else:
        database = Database(request.getfixturevalue("pg_url"), clock=clock)
        with database.engine.begin() as conn:  # each test starts empty, ids from 1
            conn.exec_driver_sql(f"TRUNCATE {', '.join(PRODUCT_TABLES)} RESTART IDENTITY CASCADE")
    yield database
    database.dispose()
