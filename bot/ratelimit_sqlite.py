"""Rate-limit counts in one SQLite file, shared by every process on this machine (``sqlite://`` URLs).

``RATE_LIMIT_STORAGE_URL=sqlite:///var/ratelimits.db`` (a path relative to the working directory, as
in SQLAlchemy URLs; ``sqlite:////abs/path.db`` for an absolute one; ``?timeout=0.5`` how long a call
waits for another process's write, in seconds, default 0.5 like the Redis socket timeout). It is a
``limits`` storage (the library's ``Storage`` and ``MovingWindowSupport``), so ``bot.ratelimit`` and
the console's sign-in guard use it through the same strategies as memory and Redis, with the same
answers as the library's Redis storage:

* moving window (``acquire_entry``, ``get_moving_window``): one row per hit (key, time, amount); a hit
  is allowed when the amounts of the key's rows inside the window plus this one stay within the
  limit, and then recorded; the window's "start" is the newest hit inside it (so ``reset`` is when
  the window is empty again, as the library's Redis and memory storages report it);
* fixed window (``incr``, ``get``, ``get_expiry``): one counter per key with its expiry, restarted
  at the first hit after it expired (``elastic_expiry`` pushes the expiry on every hit).

Every change is one ``BEGIN IMMEDIATE`` transaction (look, decide, write) and the time is read once
inside it, so concurrent processes never overshoot a limit. WAL journal, ``synchronous=NORMAL``
(counts need no fsync per hit), set when a process first opens the file (tried again within the
timeout while other processes starting at the same moment do the same). Expired rows are purged by each process at most once a minute (one
scan of the table, kept without an index on the expiry: an index costs every hit more). The
file is created 0600 (its keys are conversation ids and client keys). Any SQLite error (a busy file
past the timeout, a path that cannot be opened) is raised to the caller: ``bot.ratelimit`` then counts
in this process's memory for a while, as it does when Redis does not answer; the sign-in guard refuses.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Tuple
from urllib.parse import parse_qs, unquote, urlparse

from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage, storage_from_string

from bot.sqlite_wal import use_wal

SCHEME = "sqlite"
DEFAULT_TIMEOUT = 0.5
PURGE_EVERY_SECONDS = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS window_entries (key TEXT NOT NULL, at REAL NOT NULL, amount INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS window_entries_key_at ON window_entries (key, at);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
"""


def parse_url(uri: str) -> Tuple[Path, float]:
    """``sqlite:///relative.db`` / ``sqlite:////absolute.db`` [``?timeout=seconds``] -> (absolute path, timeout)."""
    usage = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME or parsed.netloc:
        raise ConfigurationError(f"not a SQLite rate-limit storage URL: {uri!r} ({usage})")
    path = unquote(parsed.path)[1:]  # the slash after sqlite:// separates; the rest is the path
    if not path.strip() or path == ":memory:" or path.endswith("/"):
        raise ConfigurationError(f"the SQLite rate-limit storage needs a file name: {uri!r} ({usage}; memory:// for one process)")
    query = parse_qs(parsed.query, keep_blank_values=True)
    unknown = set(query) - {"timeout"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite rate-limit storage option {', '.join(sorted(unknown))} in {uri!r}")
    timeout = DEFAULT_TIMEOUT
    if "timeout" in query:
        try:
            timeout = float(query["timeout"][-1])
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 30:
            raise ConfigurationError(f"timeout must be a number of seconds from 0 to 30 in {uri!r}")
    return Path(os.path.abspath(path)), timeout


class SQLiteStorage(Storage, MovingWindowSupport):
    """``limits`` storage on one SQLite file (see the module)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, clock: Callable[[], float] = time.time, **_: Any) -> None:
        self.path, self.timeout = parse_url(uri)
        self.clock = clock
        self._connection_of: Tuple[int, Any] = (0, None)
        self._next_purge = 0.0
        super().__init__(uri)  # self.lock: one thread at a time on this process's connection

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # ------------------------------------------------------------------ connection
    def _connection(self) -> sqlite3.Connection:
        pid, conn = self._connection_of
        if conn is not None and pid == os.getpid():
            return conn
        # (a connection inherited through fork is never used: SQLite forbids it)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # created private
        os.close(fd)
        conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            self._set_up(conn)
        except sqlite3.Error:
            conn.close()
            raise
        self._connection_of = (os.getpid(), conn)
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        use_wal(conn, self.timeout)  # (tried again while other processes opening the file switch it too)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)

    @contextmanager
    def _reading(self) -> Iterator[Tuple[sqlite3.Connection, float]]:
        with self.lock:
            yield self._connection(), self.clock()

    @contextmanager
    def _writing(self) -> Iterator[Tuple[sqlite3.Connection, float]]:
        """One write transaction; the time is read once the file is ours, so it orders like the writes."""
        with self.lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock()
                if now >= self._next_purge:
                    conn.execute("DELETE FROM window_entries WHERE expires <= ?", (now,))
                    conn.execute("DELETE FROM counters WHERE expires <= ?", (now,))
                    self._next_purge = now + PURGE_EVERY_SECONDS
                yield conn, now
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    # ------------------------------------------------------------------ moving window
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        with self._writing() as (conn, now):
            (used,) = conn.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM window_entries WHERE key = ? AND at >= ?", (key, now - expiry)
            ).fetchone()
            if used + amount > limit:
                return False
            conn.execute(
                "INSERT INTO window_entries (key, at, amount, expires) VALUES (?, ?, ?, ?)", (key, now, amount, now + expiry)
            )
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> Tuple[int, int]:
        with self._reading() as (conn, now):
            newest, used = conn.execute(
                "SELECT MAX(at), COALESCE(SUM(amount), 0) FROM window_entries WHERE key = ? AND at >= ?", (key, now - expiry)
            ).fetchone()
        return (int(newest), int(used)) if used else (int(now), 0)

    # ------------------------------------------------------------------ fixed window
    def incr(self, key: str, expiry: int, elastic_expiry: bool = False, amount: int = 1) -> int:
        with self._writing() as (conn, now):
            row = conn.execute("SELECT value, expires FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                value, expires = amount, now + expiry
            else:
                value, expires = row[0] + amount, (now + expiry if elastic_expiry else row[1])
            conn.execute("INSERT OR REPLACE INTO counters (key, value, expires) VALUES (?, ?, ?)", (key, value, expires))
            return value

    def get(self, key: str) -> int:
        with self._reading() as (conn, now):
            row = conn.execute("SELECT value FROM counters WHERE key = ? AND expires > ?", (key, now)).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> int:
        with self._reading() as (conn, now):
            row = conn.execute("SELECT expires FROM counters WHERE key = ? AND expires > ?", (key, now)).fetchone()
        return int(row[0] if row else now)

    # ------------------------------------------------------------------ housekeeping
    def clear(self, key: str) -> None:
        with self._writing() as (conn, _):
            conn.execute("DELETE FROM window_entries WHERE key = ?", (key,))
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))

    def reset(self) -> int:
        with self._writing() as (conn, _):
            keys = conn.execute(
                "SELECT COUNT(*) FROM (SELECT key FROM window_entries UNION SELECT key FROM counters)"
            ).fetchone()[0]
            conn.execute("DELETE FROM window_entries")
            conn.execute("DELETE FROM counters")
        return keys

    def check(self) -> bool:
        try:
            with self._reading() as (conn, _):
                conn.execute("SELECT 1").fetchone()
            return True
        except (sqlite3.Error, OSError):
            return False


def storage_from_url(url: str, **options: Any) -> Any:
    """``limits.storage.storage_from_string`` that also knows ``sqlite://`` (this module)."""
    if urlparse(url).scheme == SCHEME:
        return SQLiteStorage(url)
    return storage_from_string(url, **options)
