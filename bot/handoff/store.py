"""The durable hand-off store: tickets, messages, live-update events, outcomes, agents and sessions.

Plain Python on SQLAlchemy 1.4 (``future=True`` style). SQLite (the default, under var/) and
PostgreSQL are both supported; the schema is built by the Alembic migrations next to this file
(``HandoffStore.migrate()``). Every public method is one short transaction (``agent_for_session``
adds a second, tiny one at most once a minute to record that the agent was seen) and returns frozen
snapshots (``TicketView`` ...), never live ORM objects, so callers may use them from any thread.

Concurrency guarantees, on both databases:

* at most one open (waiting/assigned) ticket per conversation: a partial UNIQUE index, and
  ``open_ticket`` returns the existing ticket instead of failing when it loses a race;
* a ticket is claimed by exactly one agent: ``UPDATE ... WHERE status = 'waiting'``;
* state changes re-check the ticket's status under a row lock (PostgreSQL ``FOR UPDATE``; on SQLite
  every writing transaction starts with ``BEGIN IMMEDIATE``, so writers are serialised);
* event ids are handed out in commit order (PostgreSQL: a transaction-scoped advisory lock around the
  insert of each event), so a reader following ``events_after(cursor)`` never skips an event that
  commits late with a lower id.

Nothing here logs a password or a session token.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import secrets
import statistics
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from sqlalchemy import and_, bindparam, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from bot.db.models import (
    CLOSED_BY,
    MESSAGE_SENDERS,
    OPEN_STATUSES,
    RESOLVED_BY,
    TICKET_STATUSES,
    Agent,
    AgentSession,
    Event,
    Message,
    Outcome,
    Ticket,
)
from bot.handoff.passwords import hash_password, verify_password
from bot.paths import var_dir

__all__ = [
    "AgentView",
    "EventView",
    "HandoffError",
    "HandoffStore",
    "MessageView",
    "OPEN_STATUSES",
    "TicketConflict",
    "TicketNotFound",
    "TicketView",
    "default_url",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "db" / "migrations"
VERSION_TABLE = "handoff_alembic_version"
MAX_TEXT = 10_000
LAST_SEEN_EVERY = timedelta(seconds=60)
# Keys of PostgreSQL advisory locks (stable 32-bit numbers derived from names).
MIGRATE_LOCK_KEY = zlib.crc32(b"bankfeed.handoff.migrate")
EVENTS_LOCK_KEY = zlib.crc32(b"bankfeed.handoff.events")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class HandoffError(Exception):
    """Something the caller asked for can't be done (the message says what, for people)."""


class TicketNotFound(HandoffError):
    pass


class TicketConflict(HandoffError):
    """The ticket is not in a state that allows this (already claimed, closed, held by someone else)."""


Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


class _View:
    """to_dict(): a JSON-ready deep copy, datetimes as ISO 8601 strings."""

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _iso(value) if isinstance(value, datetime) else copy.deepcopy(value)
        return out


@dataclass(frozen=True)
class TicketView(_View):
    id: int
    conversation_id: str
    channel: str
    status: str
    diagnosis: Optional[str]
    bank: Optional[str]
    error_code: Optional[str]
    summary: Dict[str, Any]
    check_results: Any
    steps_tried: List[Any]
    transcript: List[Dict[str, Any]]
    reason: Optional[str]
    assigned_agent_id: Optional[int]
    assigned_agent_name: Optional[str]
    resolution_note: Optional[str]
    closed_by: Optional[str]
    created_at: datetime
    assigned_at: Optional[datetime]
    returned_at: Optional[datetime]
    closed_at: Optional[datetime]
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_dict(self, include_transcript: bool = True) -> Dict[str, Any]:
        data = super().to_dict()
        if not include_transcript:
            data.pop("transcript")
        return data


@dataclass(frozen=True)
class MessageView(_View):
    id: int
    ticket_id: int
    conversation_id: str
    sender: str
    agent_id: Optional[int]
    agent_name: Optional[str]
    text: str
    created_at: datetime


@dataclass(frozen=True)
class AgentView(_View):
    id: int
    username: str
    display_name: str
    is_active: bool
    created_at: datetime
    last_seen_at: Optional[datetime]


@dataclass(frozen=True)
class EventView(_View):
    id: int
    ticket_id: Optional[int]
    conversation_id: Optional[str]
    type: str
    actor: Optional[str]
    data: Dict[str, Any]
    created_at: datetime


def default_url() -> str:
    """``HANDOFF_DB_URL``, else a SQLite file ``handoff.db`` in the repository's var/ directory."""
    url = os.environ.get("HANDOFF_DB_URL", "").strip()
    if url:
        return url
    directory = var_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'handoff.db'}"


# --------------------------------------------------------------------------- input checks
def _required_str(value: Any, name: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' must be a non-empty string.")
    if len(value) > max_len:
        raise ValueError(f"'{name}' is too long (at most {max_len} characters).")
    return value


def _optional_text(value: Any, name: str, max_len: int = MAX_TEXT) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string.")
    value = value.strip()
    if len(value) > max_len:
        raise ValueError(f"'{name}' is too long (at most {max_len} characters).")
    return value or None


def _summary_str(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


def _json_copy(value: Any) -> Any:
    """A deep copy made only of JSON types (anything else becomes its str())."""
    return json.loads(json.dumps(value, default=str))


def _normalize_username(username: Any) -> str:
    if not isinstance(username, str):
        raise ValueError("The username must be a string.")
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise ValueError(
            "Usernames are 1 to 64 characters: letters, digits, '.', '_', '@' or '-', starting with a letter or digit."
        )
    return name


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_dummy_hash_lock = threading.Lock()
_dummy_hash: Optional[str] = None


def _dummy_password_hash() -> str:
    """A real hash of a random password, verified against for unknown usernames (similar timing)."""
    global _dummy_hash
    with _dummy_hash_lock:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(24))
        return _dummy_hash


# --------------------------------------------------------------------------- the store
class HandoffStore:
    def __init__(self, url: Union[str, URL, None] = None, clock: Optional[Clock] = None):
        self.url: URL = make_url(url or default_url())
        self.clock: Clock = clock or _utcnow
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if database in ("", ":memory:") or database.startswith("file::memory:"):
                raise ValueError("In-memory SQLite is not supported (each connection would see its own empty database); use a file.")
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
        self._writer = self.engine.execution_options(handoff_write=True)
        # One-statement reads need no explicit transaction (on SQLite the statement is its own).
        self._single_reader = self.engine.execution_options(handoff_single_statement=True)
        # SQLite has one writer at a time: this process's writers queue here instead of polling the
        # file lock (SQLite's busy handler sleeps and retries, which starves under contention);
        # other processes still wait through busy_timeout.
        self._write_lock: Optional[threading.Lock] = threading.Lock() if self.dialect == "sqlite" else None

    def __repr__(self) -> str:
        return f"HandoffStore({self.url.render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        """Closes the pooled connections (the store can still be used: it reconnects)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ plumbing
    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("The store's clock must return timezone-aware datetimes.")
        return now.astimezone(timezone.utc)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, future=True) as session:
            with session.begin():
                yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
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

    # Other stores of the product database (the outage radar) share this engine and its rules.
    def reading(self) -> Any:
        """A read-only transaction (context manager yielding a Session)."""
        return self._read()

    def writing(self) -> Any:
        """A write transaction (context manager yielding a Session; serialised on SQLite)."""
        return self._write()

    def now(self) -> datetime:
        return self._now()

    def _emit(
        self,
        s: Session,
        type_: str,
        *,
        ticket_id: Optional[int],
        conversation_id: Optional[str],
        actor: Optional[str],
        data: Dict[str, Any],
        now: datetime,
    ) -> int:
        """Appends an event. Everything else the transaction writes must already be flushed: on
        PostgreSQL the events lock is held from here to the commit, so ids follow commit order."""
        s.flush()
        if self.dialect == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK_KEY})
        ev = Event(
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            type=type_,
            actor=actor,
            data=_json_copy(data),
            created_at=now,
        )
        s.add(ev)
        s.flush()
        return ev.id

    @staticmethod
    def _ticket_view(t: Ticket, agent_name: Optional[str]) -> TicketView:
        return TicketView(
            id=t.id,
            conversation_id=t.conversation_id,
            channel=t.channel,
            status=t.status,
            diagnosis=t.diagnosis,
            bank=t.bank,
            error_code=t.error_code,
            summary=copy.deepcopy(t.summary) if t.summary is not None else {},
            check_results=copy.deepcopy(t.check_results),
            steps_tried=copy.deepcopy(t.steps_tried) if t.steps_tried is not None else [],
            transcript=copy.deepcopy(t.transcript) if t.transcript is not None else [],
            reason=t.reason,
            assigned_agent_id=t.assigned_agent_id,
            assigned_agent_name=agent_name,
            resolution_note=t.resolution_note,
            closed_by=t.closed_by,
            created_at=t.created_at,
            assigned_at=t.assigned_at,
            returned_at=t.returned_at,
            closed_at=t.closed_at,
            updated_at=t.updated_at,
        )

    def _view_of(self, s: Session, t: Ticket) -> TicketView:
        name = None
        if t.assigned_agent_id is not None:
            name = s.execute(select(Agent.display_name).where(Agent.id == t.assigned_agent_id)).scalar_one_or_none()
        return self._ticket_view(t, name)

    @staticmethod
    def _message_view(m: Message, agent_name: Optional[str]) -> MessageView:
        return MessageView(
            id=m.id,
            ticket_id=m.ticket_id,
            conversation_id=m.conversation_id,
            sender=m.sender,
            agent_id=m.agent_id,
            agent_name=agent_name,
            text=m.text,
            created_at=m.created_at,
        )

    @staticmethod
    def _agent_view(a: Agent) -> AgentView:
        return AgentView(
            id=a.id,
            username=a.username,
            display_name=a.display_name,
            is_active=bool(a.is_active),
            created_at=a.created_at,
            last_seen_at=a.last_seen_at,
        )

    @staticmethod
    def _event_view(e: Event) -> EventView:
        return EventView(
            id=e.id,
            ticket_id=e.ticket_id,
            conversation_id=e.conversation_id,
            type=e.type,
            actor=e.actor,
            data=copy.deepcopy(e.data) if e.data is not None else {},
            created_at=e.created_at,
        )

    def _locked_ticket(self, s: Session, ticket_id: int) -> Ticket:
        t = s.execute(
            select(Ticket).where(Ticket.id == ticket_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if t is None:
            raise TicketNotFound(f"There is no ticket {ticket_id}.")
        return t

    _OPEN_TICKET_QUERY = (
        select(Ticket.__table__.c.id)
        .where(Ticket.__table__.c.conversation_id == bindparam("conversation_id"),
               Ticket.__table__.c.status.in_(OPEN_STATUSES))
        .limit(1)
    )

    def has_open_ticket(self, conversation_id: str) -> bool:
        with self._single_reader.connect() as conn:
            return conn.execute(self._OPEN_TICKET_QUERY, {"conversation_id": conversation_id}).first() is not None

    def _find_open(self, s: Session, conversation_id: str) -> Optional[Ticket]:
        return s.execute(
            select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN_STATUSES))
        ).scalar_one_or_none()

    @staticmethod
    def _active_agent(s: Session, agent_id: Any) -> Agent:
        agent = s.get(Agent, agent_id) if isinstance(agent_id, int) else None
        if agent is None or not agent.is_active:
            raise HandoffError(f"There is no active agent {agent_id}.")
        return agent

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
        logger.info("Hand-off schema is at the latest revision (%s).", self.url.render_as_string(hide_password=True))

    def schema_revision(self) -> Optional[str]:
        """The database's current migration revision (None before the first ``migrate()``)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    def head_revision(self) -> Optional[str]:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    # ------------------------------------------------------------------ tickets
    def open_ticket(
        self, conversation_id: str, channel: str, summary: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]]
    ) -> TicketView:
        """Queues a ticket for the conversation, or returns its open ticket if it already has one."""
        conversation_id = _required_str(conversation_id, "conversation_id", 255)
        channel = _required_str(channel, "channel", 64)
        if summary is None:
            summary = {}
        if not isinstance(summary, Mapping):
            raise ValueError("'summary' must be a dict.")
        summary = _json_copy(dict(summary))
        if transcript is None:
            transcript = []
        if isinstance(transcript, (str, bytes, Mapping)) or not isinstance(transcript, Sequence):
            raise ValueError("'transcript' must be a list of {sender, text, at} dicts.")
        lines = []
        for line in transcript:
            if not isinstance(line, Mapping):
                raise ValueError("'transcript' must be a list of {sender, text, at} dicts.")
            lines.append(
                {"sender": str(line.get("sender") or ""), "text": str(line.get("text") or ""), "at": str(line.get("at") or "")}
            )
        check_results = summary.get("check_results")
        steps = summary.get("steps_tried")
        try:
            with self._write() as s:
                found = self._find_open(s, conversation_id)
                if found is not None:
                    return self._view_of(s, found)
                now = self._now()
                t = Ticket(
                    conversation_id=conversation_id,
                    channel=channel,
                    status="waiting",
                    diagnosis=_summary_str(summary.get("diagnosis")),
                    bank=_summary_str(summary.get("bank")),
                    error_code=_summary_str(summary.get("error_code")),
                    summary=summary,
                    check_results=check_results if check_results is not None else {},
                    steps_tried=list(steps) if isinstance(steps, list) else ([] if steps is None else [steps]),
                    transcript=lines,
                    reason=_summary_str(summary.get("reason")),
                    created_at=now,
                    updated_at=now,
                )
                s.add(t)
                s.flush()
                self._emit(
                    s,
                    "ticket_created",
                    ticket_id=t.id,
                    conversation_id=conversation_id,
                    actor="bot",
                    data={
                        "status": "waiting",
                        "channel": channel,
                        "reason": t.reason,
                        "diagnosis": t.diagnosis,
                        "bank": t.bank,
                        "error_code": t.error_code,
                    },
                    now=now,
                )
                view = self._ticket_view(t, None)
        except IntegrityError:
            # Lost a race with another process opening the same conversation's ticket: use theirs.
            with self._read() as s:
                found = self._find_open(s, conversation_id)
                if found is None:
                    raise
                return self._view_of(s, found)
        logger.info("Hand-off ticket %s opened for a %s conversation.", view.id, channel)
        return view

    def get_ticket(self, ticket_id: int) -> TicketView:
        with self._read() as s:
            t = s.get(Ticket, ticket_id)
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            return self._view_of(s, t)

    def open_ticket_for(self, conversation_id: str) -> Optional[TicketView]:
        # Every user message asks this and almost always the answer is "none": one indexed Core query
        # first, the ORM only when there is a ticket to show (py-spy: the ORM lookup was ~8 % of the
        # Rasa server's CPU per message).
        if not self.has_open_ticket(conversation_id):
            return None
        with self._read() as s:
            t = self._find_open(s, conversation_id)
            return self._view_of(s, t) if t is not None else None

    def list_tickets(self, statuses: Optional[Sequence[str]] = None, limit: int = 100) -> List[TicketView]:
        """Tickets in ``statuses`` (all when None). Only open statuses asked for: oldest first (queue
        order); otherwise newest first (history)."""
        if isinstance(statuses, str):
            statuses = [s for s in statuses.split(",") if s]
        wanted = list(statuses) if statuses is not None else list(TICKET_STATUSES)
        unknown = set(wanted) - set(TICKET_STATUSES)
        if unknown:
            raise ValueError(f"Unknown ticket status: {', '.join(sorted(unknown))}")
        if not wanted:
            return []
        limit = max(1, min(int(limit), 1000))
        queue_order = set(wanted) <= set(OPEN_STATUSES)
        order = (Ticket.created_at.asc(), Ticket.id.asc()) if queue_order else (Ticket.created_at.desc(), Ticket.id.desc())
        query = (
            select(Ticket, Agent.display_name)
            .outerjoin(Agent, Ticket.assigned_agent_id == Agent.id)
            .where(Ticket.status.in_(wanted))
            .order_by(*order)
            .limit(limit)
        )
        with self._read() as s:
            return [self._ticket_view(t, name) for t, name in s.execute(query).all()]

    def queue_position(self, ticket_id: int) -> Optional[int]:
        """1-based place among waiting tickets (oldest first); None if the ticket isn't waiting."""
        with self._read() as s:
            t = s.get(Ticket, ticket_id)
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            if t.status != "waiting":
                return None
            ahead = s.execute(
                select(func.count(Ticket.id)).where(
                    Ticket.status == "waiting",
                    or_(
                        Ticket.created_at < t.created_at,
                        and_(Ticket.created_at == t.created_at, Ticket.id < t.id),
                    ),
                )
            ).scalar_one()
            return int(ahead) + 1

    def claim(self, ticket_id: int, agent_id: int) -> TicketView:
        """Assigns a waiting ticket to the agent; TicketConflict if someone else got there first."""
        with self._write() as s:
            agent = self._active_agent(s, agent_id)
            now = self._now()
            result = s.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, Ticket.status == "waiting")
                .values(status="assigned", assigned_agent_id=agent.id, assigned_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            t = s.execute(
                select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            if result.rowcount != 1:
                if t.status == "assigned":
                    holder = self._view_of(s, t).assigned_agent_name or "another agent"
                    raise TicketConflict(f"Ticket {ticket_id} was already claimed by {holder}.")
                raise TicketConflict(f"Ticket {ticket_id} is {t.status.replace('_', ' ')}: it can't be claimed.")
            self._emit(
                s,
                "ticket_assigned",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent.id}",
                data={"status": "assigned", "agent_id": agent.id, "agent_name": agent.display_name},
                now=now,
            )
            return self._ticket_view(t, agent.display_name)

    def add_message(self, ticket_id: int, sender: str, text: str, agent_id: Optional[int] = None) -> MessageView:
        """Stores a chat message of the ticket. An agent may only write to a ticket assigned to them."""
        if sender not in MESSAGE_SENDERS:
            raise ValueError(f"Unknown sender {sender!r} (one of {', '.join(MESSAGE_SENDERS)}).")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("The message is empty.")
        if len(text) > MAX_TEXT:
            raise ValueError(f"The message is too long (at most {MAX_TEXT} characters).")
        if sender == "agent" and agent_id is None:
            raise ValueError("An agent's message needs the agent_id.")
        if sender != "agent" and agent_id is not None:
            raise ValueError("agent_id is only for messages from an agent.")
        with self._write() as s:
            t = self._locked_ticket(s, ticket_id)
            agent_name = None
            if sender == "agent":
                if t.status != "assigned" or t.assigned_agent_id != agent_id:
                    raise TicketConflict(f"Ticket {ticket_id} is not assigned to you: claim it before replying.")
                agent_name = self._active_agent(s, agent_id).display_name
            now = self._now()
            m = Message(
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                sender=sender,
                agent_id=agent_id,
                text=text,
                created_at=now,
            )
            s.add(m)
            t.updated_at = now
            s.flush()
            self._emit(
                s,
                "message_created",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent_id}" if sender == "agent" else sender,
                data={"message_id": m.id, "sender": sender, "agent_id": agent_id, "agent_name": agent_name, "text": text},
                now=now,
            )
            return self._message_view(m, agent_name)

    def messages(self, ticket_id: int, after_id: int = 0) -> List[MessageView]:
        """The ticket's messages with an id above ``after_id``, oldest first."""
        with self._read() as s:
            if s.get(Ticket, ticket_id) is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            rows = s.execute(
                select(Message, Agent.display_name)
                .outerjoin(Agent, Message.agent_id == Agent.id)
                .where(Message.ticket_id == ticket_id, Message.id > int(after_id or 0))
                .order_by(Message.id)
            ).all()
            return [self._message_view(m, name) for m, name in rows]

    def conversation_messages(
        self, conversation_id: str, after_id: int = 0, senders: Sequence[str] = ("agent", "system")
    ) -> List[MessageView]:
        """Messages of all the conversation's tickets with an id above ``after_id``, oldest first.

        This is how a channel without push (REST) collects what specialists wrote."""
        with self._read() as s:
            rows = s.execute(
                select(Message, Agent.display_name)
                .outerjoin(Agent, Message.agent_id == Agent.id)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.id > int(after_id or 0),
                    Message.sender.in_(list(senders)),
                )
                .order_by(Message.id)
                .limit(500)
            ).all()
            return [self._message_view(m, name) for m, name in rows]

    def return_to_bot(self, ticket_id: int, agent_id: int, note: Optional[str] = None) -> TicketView:
        """The agent holding the (assigned) ticket hands the conversation back to the bot."""
        note = _optional_text(note, "note")
        with self._write() as s:
            t = self._locked_ticket(s, ticket_id)
            if t.status != "assigned":
                raise TicketConflict(
                    f"Ticket {ticket_id} is {t.status.replace('_', ' ')}: only an assigned ticket can be handed back."
                )
            if t.assigned_agent_id != agent_id:
                raise TicketConflict(f"Ticket {ticket_id} is held by another agent.")
            agent = self._active_agent(s, agent_id)
            now = self._now()
            t.status = "returned_to_bot"
            t.returned_at = now
            t.updated_at = now
            if note:
                t.resolution_note = note
            self._emit(
                s,
                "ticket_returned",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent.id}",
                data={"status": "returned_to_bot", "agent_id": agent.id, "agent_name": agent.display_name, "note": note},
                now=now,
            )
            return self._ticket_view(t, agent.display_name)

    def close(self, ticket_id: int, closed_by: str, note: Optional[str] = None, agent_id: Optional[int] = None) -> TicketView:
        """Closes a waiting or assigned ticket. Any active agent may close (closed_by "agent", with
        agent_id); an outcome is recorded: "human" for an agent's close, "user_cancelled" for the user's,
        none for "system"."""
        if closed_by not in CLOSED_BY:
            raise ValueError(f"closed_by must be one of {', '.join(CLOSED_BY)}.")
        if closed_by == "agent" and agent_id is None:
            raise ValueError("An agent's close needs the agent_id.")
        note = _optional_text(note, "note")
        with self._write() as s:
            t = self._locked_ticket(s, ticket_id)
            if t.status not in OPEN_STATUSES:
                raise TicketConflict(f"Ticket {ticket_id} is already {t.status.replace('_', ' ')}.")
            agent = self._active_agent(s, agent_id) if agent_id is not None else None
            now = self._now()
            t.status = "closed"
            t.closed_at = now
            t.closed_by = closed_by
            t.updated_at = now
            if note:
                t.resolution_note = note
            actor = f"agent:{agent.id}" if agent is not None else closed_by
            self._emit(
                s,
                "ticket_closed",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=actor,
                data={
                    "status": "closed",
                    "closed_by": closed_by,
                    "agent_id": agent.id if agent else None,
                    "agent_name": agent.display_name if agent else None,
                    "note": note,
                },
                now=now,
            )
            resolved_by = {"agent": "human", "user": "user_cancelled"}.get(closed_by)
            if resolved_by:
                self._add_outcome(s, t.conversation_id, resolved_by, t.id, now, actor)
            return self._view_of(s, t)

    def _add_outcome(
        self, s: Session, conversation_id: str, resolved_by: str, ticket_id: Optional[int], now: datetime, actor: Optional[str]
    ) -> None:
        outcome = Outcome(conversation_id=conversation_id, resolved_by=resolved_by, ticket_id=ticket_id, created_at=now)
        s.add(outcome)
        s.flush()
        self._emit(
            s,
            "outcome_recorded",
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            actor=actor,
            data={"outcome_id": outcome.id, "resolved_by": resolved_by},
            now=now,
        )

    def record_outcome(self, conversation_id: str, resolved_by: str, ticket_id: Optional[int] = None) -> None:
        """Counts a finished conversation for the managers' figures (resolved by bot/human/user_cancelled)."""
        conversation_id = _required_str(conversation_id, "conversation_id", 255)
        if resolved_by not in RESOLVED_BY:
            raise ValueError(f"resolved_by must be one of {', '.join(RESOLVED_BY)}.")
        with self._write() as s:
            self._add_outcome(s, conversation_id, resolved_by, ticket_id, self._now(), "system")

    # ------------------------------------------------------------------ live updates and figures
    def events_after(self, cursor: int, limit: int = 200) -> List[EventView]:
        limit = max(1, min(int(limit), 1000))
        with self._read() as s:
            rows = s.execute(select(Event).where(Event.id > int(cursor)).order_by(Event.id).limit(limit)).scalars().all()
            return [self._event_view(e) for e in rows]

    def latest_event_id(self) -> int:
        with self._read() as s:
            return int(s.execute(select(func.max(Event.id))).scalar_one() or 0)

    def stats(self) -> Dict[str, Any]:
        with self._read() as s:
            by_status = dict(s.execute(select(Ticket.status, func.count(Ticket.id)).group_by(Ticket.status)).all())
            waits = [
                (assigned - created).total_seconds()
                for created, assigned in s.execute(
                    select(Ticket.created_at, Ticket.assigned_at).where(Ticket.assigned_at.isnot(None))
                ).all()
            ]
            outcomes = dict(s.execute(select(Outcome.resolved_by, func.count(Outcome.id)).group_by(Outcome.resolved_by)).all())
        waiting, assigned = int(by_status.get("waiting", 0)), int(by_status.get("assigned", 0))
        return {
            "open": waiting + assigned,
            "waiting": waiting,
            "assigned": assigned,
            "median_wait_seconds": float(statistics.median(waits)) if waits else None,
            "resolved_by": {key: int(outcomes.get(key, 0)) for key in RESOLVED_BY},
            "tickets_total": int(sum(by_status.values())),
        }

    # ------------------------------------------------------------------ agents
    def create_agent(self, username: str, password: str, display_name: Optional[str] = None) -> AgentView:
        name = _normalize_username(username)
        shown = (display_name or "").strip() or name
        if len(shown) > 200:
            raise ValueError("The display name is too long (at most 200 characters).")
        password_hash = hash_password(password)  # slow on purpose: outside the transaction
        duplicate = HandoffError(f"An agent named '{name}' already exists.")
        try:
            with self._write() as s:
                if s.execute(select(Agent.id).where(Agent.username == name)).first() is not None:
                    raise duplicate
                agent = Agent(
                    username=name,
                    display_name=shown,
                    password_hash=password_hash,
                    is_active=True,
                    created_at=self._now(),
                )
                s.add(agent)
                s.flush()
                view = self._agent_view(agent)
        except IntegrityError:
            raise duplicate from None
        logger.info("Agent %s created.", name)
        return view

    def _agent_by_name(self, s: Session, username: str) -> Agent:
        name = _normalize_username(username)
        agent = s.execute(select(Agent).where(Agent.username == name)).scalar_one_or_none()
        if agent is None:
            raise HandoffError(f"There is no agent named '{name}'.")
        return agent

    def set_password(self, username: str, password: str) -> None:
        """New password; the agent's existing sessions are signed out."""
        password_hash = hash_password(password)
        with self._write() as s:
            agent = self._agent_by_name(s, username)
            agent.password_hash = password_hash
            s.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))

    def set_active(self, username: str, active: bool) -> AgentView:
        """(De)activates an agent; deactivating also signs out their sessions."""
        with self._write() as s:
            agent = self._agent_by_name(s, username)
            agent.is_active = bool(active)
            if not active:
                s.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))
            s.flush()
            return self._agent_view(agent)

    def get_agent(self, agent_id: int) -> Optional[AgentView]:
        with self._read() as s:
            agent = s.get(Agent, agent_id)
            return self._agent_view(agent) if agent is not None else None

    def list_agents(self) -> List[AgentView]:
        with self._read() as s:
            return [self._agent_view(a) for a in s.execute(select(Agent).order_by(Agent.username)).scalars().all()]

    def authenticate(self, username: str, password: str) -> Optional[AgentView]:
        """The active agent with these credentials, or None (similar timing for unknown usernames)."""
        try:
            name: Optional[str] = _normalize_username(username)
        except ValueError:
            name = None
        found = None
        if name is not None:
            with self._read() as s:
                agent = s.execute(select(Agent).where(Agent.username == name)).scalar_one_or_none()
                if agent is not None:
                    found = (self._agent_view(agent), agent.password_hash)
        password = password if isinstance(password, str) else ""
        if found is None:
            verify_password(password, _dummy_password_hash())
            return None
        view, stored = found
        if not verify_password(password, stored) or not view.is_active:
            return None
        return view

    # ------------------------------------------------------------------ sessions
    def create_session(self, agent_id: int, ttl_seconds: int = 12 * 3600) -> str:
        """A new sign-in session; returns the raw token (only its SHA-256 is stored)."""
        if int(ttl_seconds) <= 0:
            raise ValueError("ttl_seconds must be positive.")
        token = secrets.token_urlsafe(32)
        with self._write() as s:
            agent = self._active_agent(s, agent_id)
            now = self._now()
            s.execute(delete(AgentSession).where(AgentSession.expires_at <= now))  # housekeeping
            s.add(
                AgentSession(
                    token_hash=_token_hash(token),
                    agent_id=agent.id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=int(ttl_seconds)),
                )
            )
        return token

    def agent_for_session(self, token: str) -> Optional[AgentView]:
        """The active agent signed in with ``token``, or None (unknown, expired, revoked, inactive)."""
        if not isinstance(token, str) or not token or len(token) > 512:
            return None
        digest = _token_hash(token)
        now = self._now()
        with self._read() as s:
            row = s.execute(
                select(AgentSession.expires_at, Agent)
                .join(Agent, AgentSession.agent_id == Agent.id)
                .where(AgentSession.token_hash == digest)
            ).first()
            if row is None:
                return None
            expires_at, agent = row
            if expires_at <= now or not agent.is_active:
                return None
            view = self._agent_view(agent)
        if view.last_seen_at is None or now - view.last_seen_at >= LAST_SEEN_EVERY:
            with self._write() as s:
                s.execute(
                    update(Agent)
                    .where(
                        Agent.id == view.id,
                        or_(Agent.last_seen_at.is_(None), Agent.last_seen_at <= now - LAST_SEEN_EVERY),
                    )
                    .values(last_seen_at=now)
                    .execution_options(synchronize_session=False)
                )
            view = AgentView(**{**{f.name: getattr(view, f.name) for f in fields(view)}, "last_seen_at": now})
        return view

    def revoke_session(self, token: str) -> None:
        if not isinstance(token, str) or not token:
            return
        with self._write() as s:
            s.execute(delete(AgentSession).where(AgentSession.token_hash == _token_hash(token)))


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
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("handoff_single_statement"):
            return  # autocommit mode (isolation_level None): the one SELECT is its own transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("handoff_write") else "BEGIN")
