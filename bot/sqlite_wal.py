"""Switching a SQLite file to WAL when several processes open it at the same moment.

Every SQLite file of the product (the product database, the tracker store, the rate-limit counts) is
opened by each Rasa process and the action server. ``PRAGMA journal_mode=WAL`` on a file that another
connection is switching at that moment answers "database is locked" at once, without SQLite's busy
wait (measured: six connections on a new file, about one in ten failed; in CI a process counted its
rate limits in memory because of it). ``use_wal`` reads the mode first (a file switched once stays in
WAL) and tries again, with a growing pause, until ``timeout`` seconds have passed.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.1


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def use_wal(conn: Any, timeout: float) -> None:
    """Put the file of DB-API connection ``conn`` (sqlite3) in WAL mode, waiting up to ``timeout`` s
    while another connection holds or switches it; a database that cannot use WAL keeps its mode."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        cursor = conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")  # answers the mode now in force: a database in
            return  # memory keeps "memory", as it did before this module (nothing to share with others)
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                raise
        finally:
            cursor.close()
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)
