"""The outage radar's background tasks in the running Rasa server: the back-online notifier, and the
"wait a day" reminders (the same delivery: ``tell``, the hand-off service's, on the conversation id's
channel). Started and stopped by ``bot.server.services.Services``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from bot.banks.site_prober import SiteProber
from bot.outages.notices import Notice, NoticeBook, Notifier
from bot.outages.radar import OutageRadar
from bot.outages.reminders import REMINDER_BUTTONS, Reminder, ReminderBook, ReminderSender

logger = logging.getLogger(__name__)

#: ``HandoffService.tell``: (conversation_id, channel, text, custom, events, buttons=...) -> None
Tell = Callable[..., Awaitable[None]]


def start_notifier(radar: OutageRadar, notices: NoticeBook, prober: SiteProber, tell: Tell) -> "asyncio.Task[None]":
    """Starts the back-online notifier as a background task of the server (one per replica; sends are
    claimed)."""

    async def probe(bank: str, url: str) -> str:
        return (await prober.check(bank, url)).status

    async def deliver(notice: Notice) -> None:
        # ``tell`` pushes by the conversation id's channel and, for Slack / Teams, the reference stored
        # from a verified request: nothing of the notice row picks the destination
        custom = {"outage_event": notice.outcome, "bank": notice.bank}
        await tell(notice.conversation_id, notice.channel, notice.text, custom)

    interval = radar.settings.notifier_interval_seconds
    task = asyncio.ensure_future(Notifier(notices, radar, probe, deliver).run_forever(interval))
    logger.info("Outage notifier started (every %ss).", interval)
    return task


def start_reminders(reminders: ReminderBook, tell: Tell) -> "asyncio.Task[None]":
    """Starts the "wait a day" reminder task: a due reminder asks the customer, on their channel,
    whether the feed works now, and marks the conversation (``reminder_status``) so that "still
    failing" opens a ticket."""
    from rasa.shared.core.events import SlotSet

    async def deliver(reminder: Reminder) -> None:
        await tell(
            reminder.conversation_id,
            reminder.channel,
            reminder.text or "",
            {"reminder_event": "due"},
            [SlotSet("reminder_status", "sent")],
            buttons=REMINDER_BUTTONS,
        )

    return asyncio.ensure_future(ReminderSender(reminders, deliver).run_forever(reminders.settings.interval_seconds))
