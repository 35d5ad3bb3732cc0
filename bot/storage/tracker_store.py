"""Rasa tracker store that masks secrets in user messages before anything is written or streamed.

Configured in endpoints.yml as ``type: bot.storage.tracker_store.RedactingSQLTrackerStore`` with the
usual SQLTrackerStore keys (SQLite by default, PostgreSQL in production).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Text

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.redaction import redact

logger = logging.getLogger(__name__)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers don't wait for the writer, and each commit doesn't flush the whole file to disk
    (measured: SQLite commits blocked every conversation on the server's event loop)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def redact_event(event: Event) -> bool:
    """Masks secrets in a user message event in place; True if anything was masked."""
    if not isinstance(event, UserUttered) or not event.text:
        return False
    masked = redact(event.text)
    if masked == event.text:
        return False
    event.text = masked
    if isinstance(event.parse_data, dict) and "text" in event.parse_data:
        event.parse_data["text"] = masked
    return True


def redact_tracker(tracker: DialogueStateTracker) -> int:
    return sum(redact_event(e) for e in tracker.events)


class RedactingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose user messages are masked (passwords, card/account numbers, tokens)."""

    def __init__(self, domain: Any = None, dialect: Text = "sqlite", db: Text = "rasa.db", **kwargs: Any) -> None:
        if dialect == "sqlite" and db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("type", None)
        super().__init__(domain=domain, dialect=dialect, db=os.path.expandvars(db), **kwargs)
        # Rasa's engine has no pre-ping: after a database restart the first save on each pooled
        # connection fails, and Rasa falls back to an in-memory store (losing that conversation's
        # events across replicas). Test connections before use instead.
        self.engine = sa.create_engine(self.engine.url, pool_pre_ping=True, **create_engine_kwargs(self.engine.url))
        if dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_wal)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def save(self, tracker: DialogueStateTracker) -> None:
        masked = redact_tracker(tracker)
        if masked:
            logger.info("Masked sensitive data in %d message(s) of a conversation before storing it.", masked)
        await super().save(tracker)
