"""Wires the outage radar into the running Rasa server: the back-online notifier task, and the
"wait a day" reminders (the same delivery: ``service.tell`` on the conversation id's channel)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.settings import probe_settings, radar_settings, reminder_settings
from bot.banks.site_prober import SiteProber
from bot.outages.notices import Notice, NoticeBook, Notifier
from bot.outages.radar import OutageRadar
from bot.outages.reminders import REMINDER_BUTTONS, Reminder, ReminderBook, ReminderSender

logger = logging.getLogger(__name__)


def start_notifier(app: Any, service: Any) -> Notifier:
    """Starts the notifier as a background task of the server (one per replica; sends are claimed)."""
    settings = radar_settings()
    radar = OutageRadar(service.store, settings)
    book = NoticeBook(service.store, settings)
    prober = SiteProber(probe_settings())

    async def probe(bank: str, url: str) -> str:
        return (await prober.check(bank, url)).status

    async def deliver(notice: Notice) -> None:
        # ``tell`` pushes by the conversation id's channel and, for Slack / Teams, the reference stored
        # from a verified request: nothing of the notice row picks the destination
        custom = {"outage_event": notice.outcome, "bank": notice.bank}
        await service.tell(notice.conversation_id, notice.channel, notice.text, custom)

    notifier = Notifier(book, radar, probe, deliver)
    notifier.task = asyncio.ensure_future(notifier.run_forever(settings.notifier_interval_seconds))
    notifier.prober = prober
    logger.info("Outage notifier started (every %ss).", settings.notifier_interval_seconds)
    notifier.reminders = start_reminders(service)
    return notifier


def start_reminders(service: Any) -> ReminderSender:
    """Starts the "wait a day" reminder task: a due reminder asks the customer, on their channel,
    whether the feed works now, and marks the conversation (``reminder_status``) so that "still
    failing" opens a ticket."""
    from rasa.shared.core.events import SlotSet

    settings = reminder_settings()
    book = ReminderBook(service.store, settings)

    async def deliver(reminder: Reminder) -> None:
        await service.tell(reminder.conversation_id, reminder.channel, reminder.text or "", {"reminder_event": "due"},
                           [SlotSet("reminder_status", "sent")], buttons=REMINDER_BUTTONS)

    sender = ReminderSender(book, deliver)
    sender.task = asyncio.ensure_future(sender.run_forever(settings.interval_seconds))
    return sender


async def stop_notifier(notifier: Notifier) -> None:
    """A clean shutdown: the background task is cancelled and awaited, nothing left pending."""
    reminders = getattr(notifier, "reminders", None)
    if reminders is not None and getattr(reminders, "task", None) is not None:
        reminders.task.cancel()
        await asyncio.gather(reminders.task, return_exceptions=True)
        reminders.task = None
    task = getattr(notifier, "task", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await notifier.prober.aclose()
        notifier.task = None
