"""Back-online notices: a user asks to be told when their bank answers again.

Notices live in the database, so the schedule survives restarts; each one is sent exactly once,
even with several server replicas: a replica must win the ``sent_at IS NULL`` update to send it.
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
from bot.db.models import OutageNotice
from bot.outages.radar import HEALTHY_PROBES, OutageRadar, RadarSettings
from bot.outages.rounds import claim_then_deliver, every

BACK_TEXT = "Good news: {bank}'s online banking is answering again. Press Update in QuickBooks Banking to refresh your feed; if it still fails, tell me here and we'll carry on."
EXPIRED_TEXT = "{bank}'s site still wasn't answering normally after a day of checks. If your feed still fails, tell me here and I'll bring in a specialist; meanwhile you can keep uploading transactions manually."


@dataclass(frozen=True)
class Notice:
    id: int
    conversation_id: str
    channel: str
    bank: str
    probe_url: str
    outcome: Optional[str] = None
    text: Optional[str] = None
    sent_at: Optional[datetime] = None


def _notice(n: OutageNotice) -> Notice:
    return Notice(n.id, n.conversation_id, n.channel, n.bank, n.probe_url, n.outcome, n.text, n.sent_at)


class NoticeBook:
    """Stores and schedules notices (blocking calls; run them in a thread from async code)."""

    def __init__(self, db: Database, settings: Optional[RadarSettings] = None):
        self.db = db
        self.settings = settings or RadarSettings()

    def subscribe(self, conversation_id: str, channel: str, bank: str, probe_url: str) -> Notice:
        """Asks for a notice (idempotent: one pending notice per conversation and bank). The channel
        recorded is the one the conversation id names, when it names one (delivery goes by the id)."""
        channel = sessions.channel_of(conversation_id) or channel
        now = self.db.now()
        try:
            with self.db.writing() as s:
                notice = OutageNotice(
                    conversation_id=conversation_id,
                    channel=channel,
                    bank=bank,
                    probe_url=probe_url,
                    created_at=now,
                    next_check_at=now + timedelta(minutes=self.settings.recheck_minutes),
                    expires_at=now + timedelta(hours=self.settings.notice_expiry_hours),
                )
                s.add(notice)
                s.flush()
                return _notice(notice)
        except IntegrityError:
            return self.pending(conversation_id, bank)  # already asked

    def pending(self, conversation_id: str, bank: str) -> Optional[Notice]:
        with self.db.reading() as s:
            row = s.execute(
                select(OutageNotice).where(
                    OutageNotice.conversation_id == conversation_id, OutageNotice.bank == bank, OutageNotice.sent_at.is_(None)
                )
            ).scalar_one_or_none()
            return _notice(row) if row else None

    def due(self, limit: int = 100) -> List[Notice]:
        with self.db.reading() as s:
            rows = s.execute(
                select(OutageNotice)
                .where(OutageNotice.sent_at.is_(None), OutageNotice.next_check_at <= self.db.now())
                .order_by(OutageNotice.next_check_at)
                .limit(limit)
            ).scalars()
            return [_notice(n) for n in rows]

    def postpone(self, notice_id: int) -> None:
        with self.db.writing() as s:
            s.execute(
                update(OutageNotice)
                .where(OutageNotice.id == notice_id, OutageNotice.sent_at.is_(None))
                .values(next_check_at=self.db.now() + timedelta(minutes=self.settings.recheck_minutes))
            )

    def expired(self, notice_id: int) -> bool:
        with self.db.reading() as s:
            row = s.get(OutageNotice, notice_id)
            return row is not None and row.expires_at <= self.db.now()

    def claim(self, notice_id: int, outcome: str, text: str) -> bool:
        """Marks the notice sent; True only for the one caller that should deliver it."""
        with self.db.writing() as s:
            result = s.execute(
                update(OutageNotice)
                .where(OutageNotice.id == notice_id, OutageNotice.sent_at.is_(None))
                .values(sent_at=self.db.now(), outcome=outcome, text=text)
            )
            return result.rowcount == 1

    def sent_to(self, conversation_id: str, after_id: int = 0) -> List[Notice]:
        """Notices already sent to a conversation (REST clients collect them by polling)."""
        with self.db.reading() as s:
            rows = s.execute(
                select(OutageNotice)
                .where(
                    OutageNotice.conversation_id == conversation_id, OutageNotice.sent_at.is_not(None), OutageNotice.id > after_id
                )
                .order_by(OutageNotice.id)
            ).scalars()
            return [_notice(n) for n in rows]


Deliver = Callable[[Notice], Awaitable[None]]
Probe = Callable[[str, str], Awaitable[str]]  # (bank, url) -> probe status


class Notifier:
    """Works through due notices: re-probes each bank once per round and tells the users."""

    def __init__(self, book: NoticeBook, radar: OutageRadar, probe: Probe, deliver: Deliver):
        self.book, self.radar, self.probe, self.deliver = book, radar, probe, deliver

    async def run_once(self) -> int:
        """One round; returns how many notices were sent."""
        due = await asyncio.to_thread(self.book.due)
        statuses: dict = {}
        sent = 0
        for notice in due:
            if notice.bank not in statuses:
                statuses[notice.bank] = await self.probe(notice.bank, notice.probe_url)
                await asyncio.to_thread(self.radar.record_probe, notice.bank, statuses[notice.bank])
            if statuses[notice.bank] in HEALTHY_PROBES:
                outcome, text = "bank_back", BACK_TEXT.format(bank=notice.bank)
            elif await asyncio.to_thread(self.book.expired, notice.id):
                outcome, text = "expired", EXPIRED_TEXT.format(bank=notice.bank)
            else:
                await asyncio.to_thread(self.book.postpone, notice.id)
                continue
            ready = Notice(notice.id, notice.conversation_id, notice.channel, notice.bank, notice.probe_url, outcome, text)
            if await claim_then_deliver(
                functools.partial(self.book.claim, notice.id, outcome, text),
                functools.partial(self.deliver, ready),
                f"outage notice {notice.id}",
            ):
                sent += 1
        return sent

    async def run_forever(self, interval: float) -> None:
        await every(interval, self.run_once, "Outage notice")
