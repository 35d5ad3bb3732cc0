"""Fresh PostgreSQL databases for tests, on the machine's local server (CI starts it)."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest
import sqlalchemy as sa

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
