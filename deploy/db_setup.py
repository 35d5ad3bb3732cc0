"""Prepares the production databases; safe to run again (scripts/prod-up.sh, the compose `migrate`
service and the Kubernetes `bankfeed-migrate` Job run it before any replica starts).

    python deploy/db_setup.py [--create-databases] [--wait SECONDS]

1. waits for PostgreSQL (``--wait``, default 60 s);
2. with ``--create-databases``: creates the tracker database (``TRACKER_DB_*``) and the hand-off
   database (``HANDOFF_DB_URL``) when they are missing, connecting to the server's ``postgres``
   database with the same credentials (needs CREATEDB; managed databases usually exist already);
3. brings the hand-off schema to the latest Alembic revision (what ``python -m bot.handoff.cli
   migrate`` does; each replica repeats it at start-up, serialised by an advisory lock);
4. creates Rasa's tracker table (``events``) in the tracker database, so replicas starting together
   don't race on ``CREATE TABLE``.

The two databases must differ: both have an ``events`` table with different columns.
Exit status 0 when everything is ready, 1 with a message otherwise. Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import URL, make_url  # noqa: E402

REQUIRED = ("TRACKER_DB_HOST", "TRACKER_DB_PORT", "TRACKER_DB_NAME", "TRACKER_DB_USER", "HANDOFF_DB_URL")


class SetupError(Exception):
    pass


def tracker_url(env: Dict[str, str]) -> URL:
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SetupError(f"Set these environment variables: {', '.join(missing)}")
    return URL.create(
        "postgresql",
        username=env["TRACKER_DB_USER"],
        password=env.get("TRACKER_DB_PASSWORD") or None,
        host=env["TRACKER_DB_HOST"],
        port=int(env["TRACKER_DB_PORT"]),
        database=env["TRACKER_DB_NAME"],
    )


def handoff_url(env: Dict[str, str]) -> URL:
    url = make_url(env["HANDOFF_DB_URL"])
    if url.get_backend_name() != "postgresql":
        raise SetupError("HANDOFF_DB_URL must be a PostgreSQL URL in production (replicas share it).")
    return url


def same_database(a: URL, b: URL) -> bool:
    return (a.host, a.port or 5432, a.database) == (b.host, b.port or 5432, b.database)


def show(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def wait_for(url: URL, seconds: float) -> None:
    """Waits until the server answers (on its ``postgres`` database)."""
    admin = url.set(database="postgres")
    deadline = time.monotonic() + seconds
    while True:
        engine = sa.create_engine(admin, future=True, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise SetupError(f"PostgreSQL is not reachable at {show(admin)}: {str(exc).strip().splitlines()[0]}")
            time.sleep(1)
        finally:
            engine.dispose()


def create_database(url: URL) -> bool:
    """Creates ``url.database`` if missing; True if it was created."""
    name = url.database
    if not name:
        raise SetupError(f"No database name in {show(url)}")
    engine = sa.create_engine(url.set(database="postgres"), future=True, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            except sa.exc.ProgrammingError as exc:  # created meanwhile by another runner
                if "already exists" not in str(exc):
                    raise
                return False
            return True
    finally:
        engine.dispose()


def migrate_handoff(url: URL) -> str:
    from bot.db.engine import Database

    db = Database(url)
    try:
        db.migrate()
        return db.schema_revision() or "?"
    finally:
        db.dispose()


def create_tracker_tables(url: URL) -> None:
    import logging

    logging.getLogger("rasa").setLevel(logging.WARNING)
    from rasa.core.tracker_store import SQLTrackerStore

    engine = sa.create_engine(url)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--create-databases", action="store_true", help="create the two databases if missing")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for PostgreSQL (default 60)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:
        tracker, handoff = tracker_url(env), handoff_url(env)
        if same_database(tracker, handoff):
            raise SetupError(
                "The tracker store and the hand-off store must be different databases (both have an "
                f"'events' table): both point at {show(tracker)}."
            )
        wait_for(tracker, args.wait)
        if not same_database(tracker.set(database="postgres"), handoff.set(database="postgres")):
            wait_for(handoff, args.wait)
        if args.create_databases:
            for label, url in (("tracker", tracker), ("hand-off", handoff)):
                created = create_database(url)
                print(f"{label} database {url.database}: {'created' if created else 'exists'}")
        revision = migrate_handoff(handoff)
        print(f"hand-off schema at revision {revision} ({show(handoff)})")
        create_tracker_tables(tracker)
        print(f"tracker table ready ({show(tracker)})")
    except SetupError as exc:
        print(f"db_setup: {exc}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError as exc:
        print(f"db_setup: database error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
