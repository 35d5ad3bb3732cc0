"""Wires the outage radar into the running Rasa server: the back-online notifier task."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from actions.settings import probe_settings, radar_settings
from actions.site_prober import SiteProber
from bot.outages.notices import Notice, NoticeBook, Notifier
from bot.outages.radar import OutageRadar

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
    return notifier


async def stop_notifier(notifier: Notifier) -> None:
    """A clean shutdown: the background task is cancelled and awaited, nothing left pending."""
    task = getattr(notifier, "task", None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await notifier.prober.aclose()
        notifier.task = None
