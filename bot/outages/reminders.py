"""Checking back with a customer who was told to wait a day for the bank.

The customer asks for it at the "wait a day" step; the reminder is stored in the database (so it
survives restarts) and, when due, delivered once on the conversation's channel by the same
machinery as the back-online notices (``HandoffService.tell``: the channel comes from the
conversation id). It asks whether the feed works now; "still failing" then opens a ticket with the
whole record (see ``bot/troubleshooting/conversation.py``, ``reminder_status``). With several replicas, a
replica must win the ``sent_at IS NULL`` update to deliver it.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Awaitable, Callable, List, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot import sessions
from bot.db.engine import Database
from bot.db.models import WaitReminder
from bot.outages.rounds import claim_then_deliver, every

REMINDER_TEXT = "Checking in as promised: it's been a day since we paused on {topic}. Is your bank feed updating now?"
REMINDER_BUTTONS = [
    {"title": "Yes, it's fixed", "payload": "/fixed_it"},
    {"title": "No, still failing", "payload": "/deny"},
]


@dataclass(frozen=True)
class ReminderSettings:
    delay_hours: float = 24  # when the reminder is due, after it was asked for
    interval_seconds: float = 60  # how often due reminders are looked for

    @classmethod
    def from_mapping(cls, data: Optional[dict]) -> "ReminderSettings":
        data = dict(data or {})
        unknown = set(data) - {"delay_hours", "interval_seconds"}
        if unknown:
            raise ValueError(f"unknown reminders settings: {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True)
class Reminder:
    id: int
    conversation_id: str
    channel: str
    topic: str
    due_at: datetime
    sent_at: Optional[datetime] = None
    text: Optional[str] = None


def _reminder(r: WaitReminder) -> Reminder:
    return Reminder(r.id, r.conversation_id, r.channel, r.topic, r.due_at, r.sent_at, r.text)


class ReminderBook:
    """Stores and schedules reminders (blocking calls; run them in a thread from async code)."""

    def __init__(self, db: Database, settings: Optional[ReminderSettings] = None):
        self.db = db
        self.settings = settings or ReminderSettings()

    def schedule(self, conversation_id: str, channel: str, topic: str) -> Reminder:
        """Asks for a reminder (idempotent: one pending per conversation). The channel recorded is the
        one the conversation id names, when it names one (delivery goes by the id anyway)."""
        channel = sessions.channel_of(conversation_id) or channel
        now = self.db.now()
        try:
            with self.db.writing() as s:
                row = WaitReminder(
                    conversation_id=conversation_id,
                    channel=channel,
                    topic=topic[:200],
                    created_at=now,
                    due_at=now + timedelta(hours=self.settings.delay_hours),
                )
                s.add(row)
                s.flush()
                return _reminder(row)
        except IntegrityError:
            pending = self.pending(conversation_id)
            assert pending is not None
            return pending

    def pending(self, conversation_id: str) -> Optional[Reminder]:
        with self.db.reading() as s:
            row = s.execute(
                select(WaitReminder).where(WaitReminder.conversation_id == conversation_id, WaitReminder.sent_at.is_(None))
            ).scalar_one_or_none()
            return _reminder(row) if row else None

    def due(self, limit: int = 100) -> List[Reminder]:
        with self.db.reading() as s:
            rows = s.execute(
                select(WaitReminder)
                .where(WaitReminder.sent_at.is_(None), WaitReminder.due_at <= self.db.now())
                .order_by(WaitReminder.due_at)
                .limit(limit)
            ).scalars()
            return [_reminder(r) for r in rows]

    def claim(self, reminder_id: int, text: str) -> bool:
        """Marks the reminder sent; True only for the one caller that should deliver it."""
        with self.db.writing() as s:
            result = s.execute(
                update(WaitReminder)
                .where(WaitReminder.id == reminder_id, WaitReminder.sent_at.is_(None))
                .values(sent_at=self.db.now(), text=text)
            )
            return result.rowcount == 1

    def sent_to(self, conversation_id: str, after_id: int = 0) -> List[Reminder]:
        """Reminders already sent to a conversation (REST clients collect them by polling)."""
        with self.db.reading() as s:
            rows = s.execute(
                select(WaitReminder)
                .where(
                    WaitReminder.conversation_id == conversation_id, WaitReminder.sent_at.is_not(None), WaitReminder.id > after_id
                )
                .order_by(WaitReminder.id)
            ).scalars()
            return [_reminder(r) for r in rows]


Deliver = Callable[[Reminder], Awaitable[None]]


class ReminderSender:
    """Delivers due reminders, each exactly once (claimed first)."""

    def __init__(self, book: ReminderBook, deliver: Deliver):
        self.book, self.deliver = book, deliver

    async def run_once(self) -> int:
        sent = 0
        for reminder in await asyncio.to_thread(self.book.due):
            text = REMINDER_TEXT.format(topic=reminder.topic)
            ready = Reminder(reminder.id, reminder.conversation_id, reminder.channel, reminder.topic, reminder.due_at, None, text)
            if await claim_then_deliver(
                functools.partial(self.book.claim, reminder.id, text),
                functools.partial(self.deliver, ready),
                f"reminder {reminder.id}",
            ):
                sent += 1
        return sent

    async def run_forever(self, interval: float) -> None:
        await every(interval, self.run_once, "Reminder")
