"""Rasa tracker store that masks secrets in every event before anything is written or streamed.

Configured in endpoints.yml as ``type: bot.server.stores.tracker_store.RedactingSQLTrackerStore`` with the
usual SQLTrackerStore keys (SQLite by default, PostgreSQL in production).

**Two writers of one conversation.** Rasa's ``SQLTrackerStore.save`` decides which events are new by
counting the stored ones: when two processes load the same N events and both append (two replicas
while the lock store is unreachable, an agent's message pushed while the bot answers), the second
writer finds N + k stored and skips its own first k events (lost), or, when both count before either
inserts, both batches go in interleaved. Here each save appends exactly the events this tracker
object added since it was loaded or last saved, in one transaction that holds the conversation's
write lock (PostgreSQL: a transaction-scoped advisory lock on the conversation; SQLite: ``BEGIN
IMMEDIATE``) and compares the conversation's last stored event id with the one this tracker was
loaded with. A mismatch is a conflict: the other writer's events stay, this writer's new events are
appended after them (never overwritten, never skipped, never duplicated), and it is logged. A
tracker this store did not load (a new conversation, Rasa's HTTP API replacing events) is saved the
way Rasa does, but under the same lock. The table is Rasa's own, unchanged.

**The latest session's rows, kept in this process.** Loading a conversation (every message) read and
decoded every row of its latest session again. The store now keeps, per conversation, the stored rows
it last read or wrote (their JSON text, as stored) with the conversation's *version*: the number of
its stored events and their last id, one indexed query. A load whose version is still the kept one
builds the tracker from the kept rows (the same ``DialogueStateTracker.from_dict`` input the query
would give); any other version, another process's write included, reads the database and keeps what
it read. A save keeps its new rows only if the version it found under the write lock was the kept
one. Rows are only ever appended, each conversation's by one writer at a time (the lock above), so
an unchanged version means unchanged rows. The kept rows are bounded (``cache_mb``, 32 MB by
default; 0: nothing kept) and dropped least recently used first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Text, Tuple

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker

from bot import log_masking
from bot.redaction import ROUTING_METADATA_KEYS, redact_value
from bot.sqlite_wal import use_wal

logger = logging.getLogger(__name__)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers don't wait for the writer, and each commit doesn't flush the whole file to disk
    (measured: SQLite commits blocked every conversation on the server's event loop)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    use_wal(dbapi_connection, timeout=5.0)  # the other Rasa processes open the same file


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


def _sqlite_transactions(engine: Any) -> None:
    """SQLAlchemy, not the sqlite3 module, starts transactions: ``BEGIN`` for reads, ``BEGIN IMMEDIATE``
    (the database's write lock, taken before the stored events are read) for a save."""

    @sa.event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tracker_write") else "BEGIN")


STORED = "_bankfeed_stored"  # attribute of a tracker this store loaded or saved
SAVE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Stored:
    """What a tracker object had in the database when this store last loaded or saved it."""

    owner: int  # id() of the tracker: a copy of it (deepcopy) is not trusted with this
    saved: int  # how many of its events are stored
    last_id: Optional[int]  # the conversation's last stored event id then


Version = Tuple[int, Optional[int]]  # (how many events a conversation has stored, the last one's id)
# One stored event: (timestamp, is a session start, the stored JSON, written by this store). What this
# store wrote is already masked (masking is idempotent: tests/test_properties.py), so a tracker built
# from it does not mask those events again (``redact_tracker`` skips events marked as checked).
Row = Tuple[Optional[float], bool, str, bool]


@dataclass(frozen=True)
class _Kept:
    """A conversation's latest-session rows as the database had them at ``version``."""

    version: Version
    rows: Tuple[Row, ...]
    size: int  # bytes of JSON, for the cache's bound


def latest_session(rows: List[Row]) -> List[Row]:
    """The rows of ``rows`` (in id order) that Rasa's latest-session query returns: from the latest
    session start's timestamp on, or all of them when there is none (``SQLTrackerStore._event_query``)."""
    starts = [row[0] for row in rows if row[1] and row[0] is not None]
    if not starts:
        return rows
    start = max(starts)
    return [row for row in rows if row[0] is not None and row[0] >= start]


class SessionRowCache:
    """The kept rows of the conversations this process loaded or saved last, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: "OrderedDict[str, _Kept]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the store may be used from worker threads too
        self.hits = self.misses = 0

    def get(self, sender_id: str, version: Version) -> Optional[Tuple[Row, ...]]:
        with self._lock:
            kept = self._kept.get(sender_id)
            if kept is None or kept.version != version:
                self.misses += 1
                return None
            self._kept.move_to_end(sender_id)
            self.hits += 1
            return kept.rows

    def version(self, sender_id: str) -> Optional[Version]:
        with self._lock:
            kept = self._kept.get(sender_id)
            return kept.version if kept is not None else None

    def put(self, sender_id: str, version: Version, rows: List[Row]) -> None:
        size = sum(len(row[2]) for row in rows) + 64 * len(rows)
        with self._lock:
            self._drop(sender_id)
            if size > self.max_bytes:
                return
            self._kept[sender_id] = _Kept(version, tuple(rows), size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._kept)))

    def extend(self, sender_id: str, before: Version, after: Version, new_rows: List[Row]) -> None:
        """The conversation was ``before`` and this process appended ``new_rows``, making it ``after``:
        kept rows of ``before`` become those of ``after``; anything else is dropped."""
        with self._lock:
            kept = self._kept.get(sender_id)
        if before == (0, None):
            self.put(sender_id, after, latest_session(new_rows))
        elif kept is not None and kept.version == before:
            self.put(sender_id, after, latest_session(list(kept.rows) + new_rows))
        else:
            self.discard(sender_id)

    def discard(self, sender_id: str) -> None:
        with self._lock:
            self._drop(sender_id)

    def _drop(self, sender_id: str) -> None:
        kept = self._kept.pop(sender_id, None)
        if kept is not None:
            self._bytes -= kept.size


def _advisory_key(sender_id: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for one conversation."""
    digest = hashlib.sha256(b"bankfeed.tracker:" + sender_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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

    def __init__(
        self, domain: Any = None, dialect: Text = "sqlite", db: Text = "rasa.db", cache_mb: float = 32, **kwargs: Any
    ) -> None:
        self.cache = SessionRowCache(int(float(cache_mb) * 1024 * 1024))
        if dialect == "sqlite" and db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("type", None)
        log_masking.install()  # this process stores conversations: its logs must not hold their secrets
        super().__init__(domain=domain, dialect=dialect, db=os.path.expandvars(db), **kwargs)
        if dialect == "sqlite":
            # SQLAlchemy 1.4 opens a new SQLite connection per session for a file (NullPool), and each
            # one ran the PRAGMAs again (py-spy: ~5 % of the server's time per message): keep them
            # pooled. A file needs no pre-ping: there is no server to restart.
            self.engine = sa.create_engine(
                self.engine.url,
                poolclass=sa.pool.QueuePool,
                pool_size=5,
                max_overflow=10,
                connect_args={"check_same_thread": False},
            )
            sa.event.listen(self.engine, "connect", _sqlite_wal)
            _sqlite_transactions(self.engine)
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
        latest_session = [events.c.sender_id == sender, sa.or_(events.c.timestamp >= session_start, session_start.is_(None))]
        return {
            "latest": sa.select(events.c.id, events.c.timestamp, events.c.type_name, events.c.data)
            .where(*latest_session)
            .order_by(events.c.id),
            "all": sa.select(events.c.id, events.c.data).where(events.c.sender_id == sender).order_by(events.c.id),
            "count_latest": sa.select(sa.func.count()).select_from(events).where(*latest_session),
            "version": sa.select(sa.func.count(), sa.func.max(events.c.id)).where(events.c.sender_id == sender),
            "insert": events.insert(),
        }

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        if fetch_events_from_all_sessions:
            with self.session_scope() as session:
                rows = session.connection().execute(self._statements["all"], {"sender_id": sender_id}).all()
            data = [row_data for _, row_data in rows]
            last_id = max((row_id for row_id, _ in rows), default=None)
            masked = [False] * len(data)
        else:
            data, masked, last_id = self._latest_session_data(sender_id)
        if not (self.domain and data):
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(d) for d in data], self.domain.slots)
        if len(tracker.events) == len(data):  # (Rasa skips an event it cannot read: then check them all)
            for event, already in zip(tracker.events, masked):
                if already:
                    setattr(event, _CHECKED, True)
        setattr(tracker, STORED, _Stored(id(tracker), len(tracker.events), last_id))
        return tracker

    def _latest_session_data(self, sender_id: Text) -> Tuple[List[str], List[bool], Optional[int]]:
        """The stored JSON of the latest session's events (the kept rows while the conversation's version
        is the kept one), whether this store wrote each of them, and the conversation's last event id."""
        sender = {"sender_id": sender_id}
        with self.engine.connect() as connection:
            # the version first: rows read after it are at least as new, so what is kept is never older
            # than the version it is kept under
            count, last_id = connection.execute(self._statements["version"], sender).one()
            version = (count, last_id)
            kept = self.cache.get(sender_id, version) if self.cache.max_bytes else None
            if kept is not None:
                return [row[2] for row in kept], [row[3] for row in kept], last_id
            rows = connection.execute(self._statements["latest"], sender).all()
        if self.cache.max_bytes:
            self.cache.put(
                sender_id,
                version,
                [(ts, type_name == SessionStarted.type_name, data, False) for _, ts, type_name, data in rows],
            )
        if rows:  # (a row stored after the version was read is in them: this tracker has it)
            last_id = max(last_id or 0, rows[-1][0])
        return [data for *_, data in rows], [False] * len(rows), last_id

    async def save(self, tracker: DialogueStateTracker) -> None:
        masked = redact_tracker(tracker)
        if masked:
            logger.info("Masked sensitive data in %d event(s) of a conversation before storing it.", masked)
        await self.stream_events(tracker)
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                self._append(tracker)
                return
            except sa.exc.OperationalError:
                # SQLite: another process held the write lock longer than busy_timeout
                if self.engine.dialect.name != "sqlite" or attempt == SAVE_ATTEMPTS:
                    raise
                logger.warning("The tracker database was busy; saving %s again (attempt %d).", tracker.sender_id, attempt + 1)
                time.sleep(0.05 * attempt)

    def _append(self, tracker: DialogueStateTracker) -> None:
        """Appends the tracker's new events under the conversation's write lock (see the module doc)."""
        statements = self._statements
        sender = {"sender_id": tracker.sender_id}
        events: List[Event] = list(tracker.events)
        known: Optional[_Stored] = getattr(tracker, STORED, None)
        if known is not None and (
            known.owner != id(tracker) or getattr(tracker.events, "maxlen", None) or known.saved > len(events)
        ):
            known = None  # a copy, or a tracker that forgets events: saved the way Rasa does
        with self.session_scope() as session:
            connection = session.connection(execution_options={"tracker_write": True})  # BEGIN IMMEDIATE on SQLite
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(tracker.sender_id)})
            count, last_id = connection.execute(statements["version"], sender).one()
            before = (count, last_id)
            if known is None:
                # Rasa's _additional_events: the events of the latest session not stored yet
                stored = connection.execute(statements["count_latest"], sender).scalar_one()
                new = events[stored:]
            else:
                new = events[known.saved :]
                if last_id != known.last_id:
                    logger.warning(
                        "Conversation %s was saved by another writer since this one loaded it: its %d new event(s) "
                        "are appended after the other writer's.",
                        tracker.sender_id,
                        len(new),
                    )
            rows = [self._row(tracker.sender_id, event) for event in new]
            after = before
            if rows:  # one statement, in order: the ids keep the events' order
                connection.execute(statements["insert"], rows)
                count, last_id = connection.execute(statements["version"], sender).one()
                after = (count, last_id)
            session.commit()
        if self.cache.max_bytes and after != before:
            new_rows = [(row["timestamp"], row["type_name"] == SessionStarted.type_name, row["data"], True) for row in rows]
            self.cache.extend(tracker.sender_id, before, after, new_rows)
        setattr(tracker, STORED, _Stored(id(tracker), len(events), last_id))

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
