"""The action server's view of the outage radar, for one conversation (see bot/outages/)."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Dict, Optional

from bot.handoff.desk import database
from bot.settings import radar_settings
from bot import ratelimit
from bot.outages.notices import NoticeBook
from bot.outages.radar import OutageRadar

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def radar() -> OutageRadar:
    return OutageRadar(database(), radar_settings())


@functools.lru_cache(maxsize=1)
def notices() -> NoticeBook:
    return NoticeBook(database(), radar_settings())


async def record_probe(bank: str, status: str) -> None:
    try:
        await asyncio.to_thread(radar().record_probe, bank, status)
    except Exception:
        logger.warning("Could not record a probe of %s for the outage radar.", bank, exc_info=True)


class OutageDesk:
    """Implements ``bot.troubleshooting.conversation.Outages``; radar trouble never breaks the conversation.

    ``channel`` is the tracker's latest input channel (set by the Rasa server's channel, never by
    what a client sends): reports through ``verified_channels`` count as verified. ``client_key`` is
    the pseudonym of the client's address that the REST and widget channels put in the message
    metadata; a client over ``outage_reports_per_address`` is not counted (the conversation goes on)."""

    def __init__(self, conversation_id: str, channel: str, client_key: Optional[str] = None):
        self.conversation_id = conversation_id
        self.channel = channel
        self.client_key = client_key if isinstance(client_key, str) and 0 < len(client_key) <= 64 else None

    async def current(self, bank: str) -> Optional[Dict[str, Any]]:
        try:
            outage = await asyncio.to_thread(radar().current, bank)
        except Exception:
            logger.warning("Outage radar unavailable.", exc_info=True)
            return None
        if outage is None:
            return None
        return {"since": outage.started_at.strftime("%H:%M UTC"), "report_count": outage.report_count}

    async def record_report(self, bank: str, diagnosis: str) -> None:
        try:
            if self.client_key is not None:
                decision = await ratelimit.default_limiter().check("outage_reports_per_address", self.client_key)
                if not decision.allowed:
                    logger.info("Outage report of %s not counted: its client is over %s.", bank, decision.limit)
                    return
            verified = radar().settings.is_verified(self.channel)
            await asyncio.to_thread(radar().record_report, bank, diagnosis, self.conversation_id, verified,
                                    self.client_key)
        except Exception:
            logger.warning("Could not record a report of %s for the outage radar.", bank, exc_info=True)

    async def subscribe(self, bank: str, probe_url: str) -> bool:
        try:
            await asyncio.to_thread(notices().subscribe, self.conversation_id, self.channel, bank, probe_url)
            return True
        except Exception:
            logger.warning("Could not save a back-online notice for %s.", bank, exc_info=True)
            return False
