"""The product database's schema (SQLAlchemy 1.4 declarative models).

The schema itself is created and changed only by the Alembic migrations in ``migrations/versions``;
these models must describe exactly what the migrations build (``tests/test_handoff_store.py`` compares
the two). Times are timezone-aware UTC ``datetime`` objects on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import declarative_base

TICKET_STATUSES = ("waiting", "assigned", "returned_to_bot", "closed")
OPEN_STATUSES = ("waiting", "assigned")
MESSAGE_SENDERS = ("user", "agent", "bot", "system")
CLOSED_BY = ("agent", "user", "system")
RESOLVED_BY = ("bot", "human", "user_cancelled")
EVENT_TYPES = (
    "ticket_created",
    "ticket_assigned",
    "message_created",
    "ticket_returned",
    "ticket_closed",
    "outcome_recorded",
)

# The partial index's condition, the same text for both dialects (and in the migration).
OPEN_TICKET_CONDITION = "status IN ('waiting', 'assigned')"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
Base = declarative_base(metadata=metadata)


class UTCDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and always returns aware UTC ones.

    SQLite has no time zones: values are stored as naive UTC text (fixed width, so they sort and
    compare correctly in SQL) and come back tagged as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; use an aware datetime")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _in(column: str, values: tuple) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Agent(Base):
    __tablename__ = "agents"

    id = sa.Column(sa.Integer, primary_key=True)
    username = sa.Column(sa.String(64), nullable=False, unique=True)
    display_name = sa.Column(sa.String(200), nullable=False)
    password_hash = sa.Column(sa.String(255), nullable=False)
    is_active = sa.Column(sa.Boolean(), nullable=False)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    last_seen_at = sa.Column(UTCDateTime(), nullable=True)

    __table_args__ = (sa.CheckConstraint("username = lower(username)", name="username_lower"),)


class AgentSession(Base):
    __tablename__ = "agent_sessions"

    id = sa.Column(sa.Integer, primary_key=True)
    token_hash = sa.Column(sa.String(64), nullable=False, unique=True)
    agent_id = sa.Column(sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    expires_at = sa.Column(UTCDateTime(), nullable=False)


class Ticket(Base):
    __tablename__ = "tickets"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    channel = sa.Column(sa.String(64), nullable=False)
    status = sa.Column(sa.String(20), nullable=False)
    diagnosis = sa.Column(sa.Text, nullable=True)
    bank = sa.Column(sa.Text, nullable=True)
    error_code = sa.Column(sa.Text, nullable=True)
    summary = sa.Column(sa.JSON, nullable=False)
    check_results = sa.Column(sa.JSON, nullable=False)
    steps_tried = sa.Column(sa.JSON, nullable=False)
    transcript = sa.Column(sa.JSON, nullable=False)
    reason = sa.Column(sa.String(64), nullable=True)
    assigned_agent_id = sa.Column(sa.Integer, sa.ForeignKey("agents.id"), nullable=True)
    resolution_note = sa.Column(sa.Text, nullable=True)
    closed_by = sa.Column(sa.String(20), nullable=True)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    assigned_at = sa.Column(UTCDateTime(), nullable=True)
    returned_at = sa.Column(UTCDateTime(), nullable=True)
    closed_at = sa.Column(UTCDateTime(), nullable=True)
    updated_at = sa.Column(UTCDateTime(), nullable=False)

    __table_args__ = (
        sa.CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        sa.CheckConstraint(f"closed_by IS NULL OR {_in('closed_by', CLOSED_BY)}", name="closed_by"),
        # At most one open ticket per conversation, enforced by the database on both dialects.
        sa.Index(
            "uq_tickets_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=sa.text(OPEN_TICKET_CONDITION),
            postgresql_where=sa.text(OPEN_TICKET_CONDITION),
        ),
        sa.Index("ix_tickets_status_created_at", "status", "created_at"),
    )


class Message(Base):
    __tablename__ = "messages"

    id = sa.Column(sa.Integer, primary_key=True)
    ticket_id = sa.Column(sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    conversation_id = sa.Column(sa.String(255), nullable=False)
    sender = sa.Column(sa.String(20), nullable=False)
    agent_id = sa.Column(sa.Integer, sa.ForeignKey("agents.id"), nullable=True)
    text = sa.Column(sa.Text, nullable=False)
    created_at = sa.Column(UTCDateTime(), nullable=False)

    __table_args__ = (
        sa.CheckConstraint(_in("sender", MESSAGE_SENDERS), name="sender"),
        sa.Index("ix_messages_conversation_id", "conversation_id", "id"),
    )


class Event(Base):
    __tablename__ = "events"

    # The autoincrementing id is the cursor of the agents' live updates.
    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    ticket_id = sa.Column(sa.Integer, nullable=True)
    conversation_id = sa.Column(sa.String(255), nullable=True)
    type = sa.Column(sa.String(40), nullable=False)
    actor = sa.Column(sa.String(100), nullable=True)
    data = sa.Column(sa.JSON, nullable=False)
    created_at = sa.Column(UTCDateTime(), nullable=False)

    __table_args__ = (sa.CheckConstraint(_in("type", EVENT_TYPES), name="type"),)


class Outcome(Base):
    __tablename__ = "outcomes"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    resolved_by = sa.Column(sa.String(20), nullable=False)
    ticket_id = sa.Column(sa.Integer, nullable=True)
    created_at = sa.Column(UTCDateTime(), nullable=False)

    __table_args__ = (sa.CheckConstraint(_in("resolved_by", RESOLVED_BY), name="resolved_by"),)


# --------------------------------------------------------------------------- outage radar
SIGNAL_KINDS = ("report", "probe")
NOTICE_OUTCOMES = ("bank_back", "expired")


class BankSignal(Base):
    """One piece of evidence about a bank: a user's report (with its diagnosis) or a site probe."""

    __tablename__ = "bank_signals"

    id = sa.Column(sa.Integer, primary_key=True)
    bank = sa.Column(sa.String(200), nullable=False)
    kind = sa.Column(sa.String(10), nullable=False)
    status = sa.Column(sa.String(40), nullable=False)  # a diagnosis, or a probe status
    conversation_id = sa.Column(sa.String(255), nullable=True)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    # a report from an authenticated channel (Slack, Teams: see RadarSettings.verified_channels)
    verified = sa.Column(sa.Boolean(), nullable=False, server_default=sa.false())
    # pseudonym of the reporting client's address (bot.client_address.client_key), when known
    client_key = sa.Column(sa.String(64), nullable=True)

    __table_args__ = (
        sa.CheckConstraint(_in("kind", SIGNAL_KINDS), name="kind"),
        sa.Index("ix_bank_signals_bank_created_at", "bank", "created_at"),
    )


class Outage(Base):
    """A suspected outage of one bank, from the first burst of evidence until it recovered."""

    __tablename__ = "outages"

    id = sa.Column(sa.Integer, primary_key=True)
    bank = sa.Column(sa.String(200), nullable=False, index=True)
    started_at = sa.Column(UTCDateTime(), nullable=False)
    detected_at = sa.Column(UTCDateTime(), nullable=False)
    cleared_at = sa.Column(UTCDateTime(), nullable=True)
    report_count = sa.Column(sa.Integer, nullable=False)
    probe_failures = sa.Column(sa.Integer, nullable=False)
    last_signal_at = sa.Column(UTCDateTime(), nullable=False)

    __table_args__ = (
        # at most one open (not yet cleared) outage per bank
        sa.Index(
            "uq_outages_open_bank",
            "bank",
            unique=True,
            sqlite_where=sa.text("cleared_at IS NULL"),
            postgresql_where=sa.text("cleared_at IS NULL"),
        ),
    )


class OutageNotice(Base):
    """A user's request to be told when their bank answers again (checked on a schedule)."""

    __tablename__ = "outage_notices"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    channel = sa.Column(sa.String(40), nullable=False)
    bank = sa.Column(sa.String(200), nullable=False)
    probe_url = sa.Column(sa.String(2000), nullable=False)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    next_check_at = sa.Column(UTCDateTime(), nullable=False, index=True)
    expires_at = sa.Column(UTCDateTime(), nullable=False)
    sent_at = sa.Column(UTCDateTime(), nullable=True)
    outcome = sa.Column(sa.String(20), nullable=True)
    text = sa.Column(sa.Text, nullable=True)

    __table_args__ = (
        sa.CheckConstraint(f"outcome IS NULL OR {_in('outcome', NOTICE_OUTCOMES)}", name="outcome"),
        sa.Index(
            "uq_outage_notices_pending",
            "conversation_id",
            "bank",
            unique=True,
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        ),
    )


# --------------------------------------------------------------------------- manual upload assistant
class UploadFile(Base):
    """A converted bank file waiting to be downloaded: behind a random token (only its sha256 is
    stored), for one download and at most an hour. Any server replica can serve it."""

    __tablename__ = "upload_files"

    token_hash = sa.Column(sa.String(64), primary_key=True)
    filename = sa.Column(sa.String(255), nullable=False)
    content = sa.Column(sa.LargeBinary(), nullable=False)
    content_type = sa.Column(sa.String(100), nullable=False)
    conversation_id = sa.Column(sa.String(255), nullable=True)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    expires_at = sa.Column(UTCDateTime(), nullable=False, index=True)
    downloaded_at = sa.Column(UTCDateTime(), nullable=True)


# --------------------------------------------------------------------------- where to reach a conversation
class ConversationRef(Base):
    """Where a Slack or Teams conversation lives (Slack channel + thread; Teams serviceUrl,
    conversation, bot and user), taken only from requests that passed that channel's verification
    (Slack signature, Bot Framework JWT). Hand-off messages and notices are delivered from here."""

    __tablename__ = "conversation_refs"

    conversation_id = sa.Column(sa.String(255), primary_key=True)
    channel = sa.Column(sa.String(40), nullable=False)
    reference = sa.Column(sa.JSON, nullable=False)
    updated_at = sa.Column(UTCDateTime(), nullable=False)


# --------------------------------------------------------------------------- chat platforms' deliveries
SEEN_EVENT_STATES = ("claimed", "done")


class SeenEvent(Base):
    """One event a chat platform delivered (a Slack message, a button click): claimed by the replica
    handling it, then done. A retry of a done event is dropped; a claim that never finished (older
    than the claim timeout: the process died or was restarted) is taken over. See bot/handoff/seen_events.py."""

    __tablename__ = "seen_events"

    key = sa.Column(sa.String(255), primary_key=True)
    event_id = sa.Column(sa.String(255), nullable=True)
    state = sa.Column(sa.String(10), nullable=False)
    owner = sa.Column(sa.String(64), nullable=False)
    attempts = sa.Column(sa.Integer, nullable=False)
    claimed_at = sa.Column(UTCDateTime(), nullable=False)
    finished_at = sa.Column(UTCDateTime(), nullable=True)
    expires_at = sa.Column(UTCDateTime(), nullable=False, index=True)

    __table_args__ = (sa.CheckConstraint(_in("state", SEEN_EVENT_STATES), name="state"),)


# --------------------------------------------------------------------------- banks not in the directory
class UnknownBankName(Base):
    """A bank name customers gave that the bank directory does not know (bot/handoff/unknown_banks.py):
    only how often it was given and on which days it was first and last seen. Nothing about who gave
    it (no conversation, no time of day)."""

    __tablename__ = "unknown_banks"

    key = sa.Column(sa.String(80), primary_key=True)  # the normalised, casefolded name
    name = sa.Column(sa.String(80), nullable=False)  # how it was first written (trimmed)
    count = sa.Column(sa.Integer, nullable=False)
    first_seen = sa.Column(sa.Date, nullable=False)  # UTC days
    last_seen = sa.Column(sa.Date, nullable=False)

    __table_args__ = (sa.Index("ix_unknown_banks_count", "count"),)


# --------------------------------------------------------------------------- checking back with a customer
class WaitReminder(Base):
    """A customer told to "wait a day" who asked to be checked on: due at ``due_at``, delivered once on
    the conversation's channel (the id's prefix decides it), asking whether the feed works now. See
    bot/outages/reminders.py; one pending reminder per conversation."""

    __tablename__ = "wait_reminders"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    channel = sa.Column(sa.String(40), nullable=False)
    topic = sa.Column(sa.String(200), nullable=False)
    created_at = sa.Column(UTCDateTime(), nullable=False)
    due_at = sa.Column(UTCDateTime(), nullable=False, index=True)
    sent_at = sa.Column(UTCDateTime(), nullable=True)
    text = sa.Column(sa.Text, nullable=True)

    __table_args__ = (
        sa.Index(
            "uq_wait_reminders_pending",
            "conversation_id",
            unique=True,
            sqlite_where=sa.text("sent_at IS NULL"),
            postgresql_where=sa.text("sent_at IS NULL"),
        ),
    )
