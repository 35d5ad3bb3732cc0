"""The product database: one engine, its read and write transactions, its clock and its migrations.

Every store of the product (tickets, agents, outages, notices, reminders, unknown banks,
conversation references, seen events, upload files) is built on one ``Database`` and keeps no
connection of its own. SQLite (the default: ``handoff.db`` under var/) and PostgreSQL
(``HANDOFF_DB_URL``) are both supported; the schema is built by the Alembic migrations in
``bot/db/migrations`` (``Database.migrate()``), described by ``bot/db/models.py``.

The rules every store relies on, on both databases:

* ``reading()`` is one read transaction, ``writing()`` one write transaction (a ``Session``);
  ``one_statement()`` a connection for a single read outside an explicit transaction (the cheapest
  read there is);
* writers are serialised on SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (the
  write lock is taken at the start, so a writer never acts on a stale read) and this process's
  writers queue on a lock instead of polling the file lock; other processes wait up to the busy
  timeout. On PostgreSQL, stores lock rows (``FOR UPDATE``) or take advisory locks themselves;
* ``now()`` is the database's clock (a timezone-aware UTC datetime; tests pass their own clock).

Nothing here logs a password (URLs are shown with the password hidden).
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional, Union

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from bot.paths import var_dir
from bot.sqlite_wal import use_wal

__all__ = ["Clock", "Database", "VERSION_TABLE", "default_url"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The table where Alembic keeps the schema's revision (named when the database held only hand-off tickets).
VERSION_TABLE = "handoff_alembic_version"
# Key of the PostgreSQL advisory lock that serialises migrations (a stable 32-bit number derived
# from a name; the same value as before the database had its own module, so old and new replicas agree).
MIGRATE_LOCK_KEY = zlib.crc32(b"bankfeed.handoff.migrate")
# Execution options that tell the SQLite hooks what kind of transaction to begin.
WRITE_OPTION = "bankfeed_write"
ONE_STATEMENT_OPTION = "bankfeed_one_statement"

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def default_url() -> str:
    """``HANDOFF_DB_URL``, else a SQLite file ``handoff.db`` in the repository's var/ directory."""
    url = os.environ.get("HANDOFF_DB_URL", "").strip()
    if url:
        return url
    directory = var_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'handoff.db'}"


class Database:
    """The product database (``url``: default ``default_url()``; ``clock``: what ``now()`` returns).

    Creating one connects to nothing yet; ``dispose()`` closes the pooled connections (the object
    stays usable: it reconnects)."""

    def __init__(self, url: Union[str, URL, None] = None, clock: Optional[Clock] = None):
        self.url: URL = make_url(url or default_url())
        self.clock: Clock = clock or _utcnow
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if database in ("", ":memory:") or database.startswith("file::memory:"):
                raise ValueError(
                    "In-memory SQLite is not supported (each connection would see its own empty database); use a file."
                )
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                future=True,
                connect_args={"check_same_thread": False},
                poolclass=QueuePool,
                pool_size=5,
                max_overflow=10,
            )
            _install_sqlite_hooks(self.engine)
        else:
            self.engine = create_engine(self.url, future=True, pool_pre_ping=True)
        # Writing transactions: BEGIN IMMEDIATE on SQLite (see _install_sqlite_hooks); same pool.
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        # One-statement reads need no explicit transaction (on SQLite the statement is its own).
        self._one_statement = self.engine.execution_options(**{ONE_STATEMENT_OPTION: True})
        # SQLite has one writer at a time: this process's writers queue here instead of polling the
        # file lock (SQLite's busy handler sleeps and retries, which starves under contention);
        # other processes still wait through busy_timeout.
        self._write_lock: Optional[threading.Lock] = threading.Lock() if self.dialect == "sqlite" else None

    def __repr__(self) -> str:
        return f"Database({self.shown_url!r})"

    @property
    def shown_url(self) -> str:
        """The URL with its password hidden (for messages and logs)."""
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Closes the pooled connections (the database can still be used: it reconnects)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ time and transactions
    def now(self) -> datetime:
        """The clock's time in UTC; the clock must return timezone-aware datetimes."""
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("The database's clock must return timezone-aware datetimes.")
        return now.astimezone(timezone.utc)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read transaction: a Session, committed (nothing to commit) at the end."""
        with Session(self.engine, future=True) as session:
            with session.begin():
                yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction: a Session committed at the end, rolled back on an exception
        (serialised on SQLite; objects stay readable after the commit)."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with Session(self._writer, future=True, expire_on_commit=False) as session:
                with session.begin():
                    yield session
        finally:
            if lock is not None:
                lock.release()

    def one_statement(self) -> ContextManager[Connection]:
        """A connection for one read statement, without an explicit transaction."""
        return self._one_statement.connect()

    # ------------------------------------------------------------------ schema
    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%"))
        cfg.set_main_option("version_table", VERSION_TABLE)
        return cfg

    def migrate(self) -> None:
        """Brings the schema to the latest revision (``alembic upgrade head``); idempotent.

        Concurrent callers are serialised: a session advisory lock on PostgreSQL, ``BEGIN IMMEDIATE``
        on SQLite; the whole upgrade is one transaction."""
        from alembic import command

        cfg = self._alembic_config()
        with self._writer.connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
                conn.commit()
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            finally:
                if self.dialect == "postgresql":
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATE_LOCK_KEY})
                        conn.commit()
                    except Exception:
                        conn.invalidate()  # closing the server session releases the lock
        logger.info("The product database's schema is at the latest revision (%s).", self.shown_url)

    def schema_revision(self) -> Optional[str]:
        """The database's current migration revision (None before the first ``migrate()``)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    def head_revision(self) -> Optional[str]:
        """The latest revision of the migrations (what ``migrate()`` brings the schema to)."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()


def _install_sqlite_hooks(engine: Any) -> None:
    """WAL, a busy timeout and foreign keys on every connection; and SQLAlchemy, not the sqlite3
    module, starts transactions: ``BEGIN`` for reads, ``BEGIN IMMEDIATE`` (take the write lock now,
    waiting up to busy_timeout) for writes, so a writer never acts on a stale read."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the sqlite3 module
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 5000")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()
        use_wal(dbapi_connection, timeout=5.0)  # other processes may be opening the file at this moment

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(ONE_STATEMENT_OPTION):
            return  # autocommit mode (isolation_level None): the one SELECT is its own transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")
