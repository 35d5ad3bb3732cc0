"""Rasa tracker store that masks secrets in every event before anything is written or streamed.

Configured in endpoints.yml as ``type: bot.storage.tracker_store.RedactingSQLTrackerStore`` with the
usual SQLTrackerStore keys (SQLite by default, PostgreSQL in production).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, Text

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

from bot import log_masking
from bot.redaction import ROUTING_METADATA_KEYS, redact_value

logger = logging.getLogger(__name__)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers don't wait for the writer, and each commit doesn't flush the whole file to disk
    (measured: SQLite commits blocked every conversation on the server's event loop)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


# Keys of an event's dict that are never user text: kept as they are (masking a Slack thread id or a
# Bot Framework reference would break replies, see bot.redaction.ROUTING_METADATA_KEYS).
_KEPT_EVENT_KEYS = ROUTING_METADATA_KEYS | {"event", "timestamp", "policy", "confidence", "input_channel"}
_CHECKED = "_bankfeed_secrets_checked"


def redacted_event(event: Event) -> Optional[Event]:
    """A copy of ``event`` with secrets masked in every field it is stored and streamed with (user and bot
    text, bot ``data``, slot values, entity values, parse data incl. its ``text`` and entities,
    metadata), or None if nothing in it needed masking."""
    data = event.as_dict()
    masked = redact_value(data, _KEPT_EVENT_KEYS)
    if masked == data:
        return None
    return Event.from_parameters(masked)


def redact_tracker(tracker: DialogueStateTracker) -> int:
    """Masks secrets in the tracker's events (replaced in place) and slot values; the number of events
    changed. Events already checked (by an earlier save of this tracker object) are skipped."""
    changed = 0
    events = tracker.events
    for i, event in enumerate(list(events)):
        if getattr(event, _CHECKED, False):
            continue
        masked = redacted_event(event)
        if masked is not None:
            events[i] = masked
            if tracker.latest_message is event:
                tracker.latest_message = masked
            if tracker.latest_bot_utterance is event:
                tracker.latest_bot_utterance = masked
            changed += 1
            event = masked
        setattr(event, _CHECKED, True)
    if changed:
        for slot in tracker.slots.values():
            value = redact_value(slot.value)
            if value != slot.value:
                slot.value = value
    return changed


class RedactingSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose events are masked (passwords, card/account numbers, codes, tokens, ids)
    before they are written and before ``stream_events`` publishes them to the event broker.

    Reads and writes go through SQLAlchemy Core statements on Rasa's own ``events`` table instead of
    Rasa's ORM queries: the same rows, filters and order, without building an ORM object per event
    (measured with py-spy: loading and saving trackers was about 30 % of the server's time per
    message, most of it ORM bookkeeping).
    """

    def __init__(self, domain: Any = None, dialect: Text = "sqlite", db: Text = "rasa.db", **kwargs: Any) -> None:
        if dialect == "sqlite" and db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("type", None)
        log_masking.install()  # this process stores conversations: its logs must not hold their secrets
        super().__init__(domain=domain, dialect=dialect, db=os.path.expandvars(db), **kwargs)
        if dialect == "sqlite":
            # SQLAlchemy 1.4 opens a new SQLite connection per session for a file (NullPool), and each
            # one ran the PRAGMAs again (py-spy: ~5 % of the server's time per message): keep them
            # pooled. A file needs no pre-ping: there is no server to restart.
            self.engine = sa.create_engine(self.engine.url, poolclass=sa.pool.QueuePool, pool_size=5, max_overflow=10,
                                           connect_args={"check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_wal)
        else:
            # Rasa's engine has no pre-ping: after a database restart the first save on each pooled
            # connection fails, and Rasa falls back to an in-memory store (losing that conversation's
            # events across replicas). Test connections before use instead.
            self.engine = sa.create_engine(self.engine.url, pool_pre_ping=True, **create_engine_kwargs(self.engine.url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self._statements = self._build_statements()

    # ------------------------------------------------------------------ statements
    def _build_statements(self) -> dict:
        """Built once per store (SQLAlchemy then compiles and caches each of them once), with the
        sender as a bound parameter."""
        events = self.SQLEvent.__table__
        sender = sa.bindparam("sender_id")
        session_start = (
            sa.select(sa.func.max(events.c.timestamp))
            .where(events.c.sender_id == sender, events.c.type_name == SessionStarted.type_name)
            .scalar_subquery()
        )
        # Rasa's _event_query: the sender's events from the latest session start on (all of them
        # when the conversation has none), or every session's
        latest_session = [events.c.sender_id == sender,
                          sa.or_(events.c.timestamp >= session_start, session_start.is_(None))]
        return {
            "latest": sa.select(events.c.data).where(*latest_session).order_by(events.c.id),
            "all": sa.select(events.c.data).where(events.c.sender_id == sender).order_by(events.c.id),
            "count_latest": sa.select(sa.func.count()).select_from(events).where(*latest_session),
            "insert": events.insert(),
        }

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        query = self._statements["all" if fetch_events_from_all_sessions else "latest"]
        with self.session_scope() as session:
            rows = session.connection().execute(query, {"sender_id": sender_id}).scalars().all()
        if not (self.domain and rows):
            return None
        return DialogueStateTracker.from_dict(sender_id, [json.loads(data) for data in rows], self.domain.slots)

    async def save(self, tracker: DialogueStateTracker) -> None:
        masked = redact_tracker(tracker)
        if masked:
            logger.info("Masked sensitive data in %d event(s) of a conversation before storing it.", masked)
        await self.stream_events(tracker)
        statements = self._statements
        with self.session_scope() as session:
            connection = session.connection()
            # Rasa's _additional_events: the events of the latest session not stored yet
            stored = connection.execute(statements["count_latest"], {"sender_id": tracker.sender_id}).scalar_one()
            rows = [self._row(tracker.sender_id, event) for event in list(tracker.events)[stored:]]
            if rows:  # one statement, in order: the ids keep the events' order
                connection.execute(statements["insert"], rows)
            session.commit()

    @staticmethod
    def _row(sender_id: Text, event: Event) -> dict:
        data = event.as_dict()  # the same columns Rasa's save() writes
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }
