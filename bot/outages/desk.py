"""The action server's view of the outage radar, for one conversation (see bot/outages/): the radar
and the notice book of the action server's ``ActionServices``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional

from bot.customer_time import CustomerClock
from bot.desk import ActionServices

logger = logging.getLogger(__name__)


async def record_probe(services: ActionServices, bank: str, status: str) -> None:
    """Feeds a fresh probe of ``bank``'s site to the radar (a radar failure is logged, never raised)."""
    try:
        await asyncio.to_thread(services.radar.record_probe, bank, status)
    except Exception:
        logger.warning("Could not record a probe of %s for the outage radar.", bank, exc_info=True)


class OutageDesk:
    """Implements ``bot.troubleshooting.conversation.Outages``; radar trouble never breaks the conversation.

    ``channel`` is the tracker's latest input channel (set by the Rasa server's channel, never by
    what a client sends): reports through ``verified_channels`` count as verified. ``client_key`` is
    the pseudonym of the client's address that the REST and widget channels put in the message
    metadata; a client over ``outage_reports_per_address`` is not counted (the conversation goes on).
    ``clock``: how the customer reads a time of day (the outage's start is told in it)."""

    def __init__(
        self,
        services: ActionServices,
        conversation_id: str,
        channel: str,
        client_key: Optional[str] = None,
        clock: Optional[CustomerClock] = None,
    ):
        self.services = services
        self.clock = clock or CustomerClock()
        self.conversation_id = conversation_id
        self.channel = channel
        self.client_key = client_key if isinstance(client_key, str) and 0 < len(client_key) <= 64 else None

    async def current(self, bank: str) -> Optional[Dict[str, Any]]:
        try:
            outage = await asyncio.to_thread(self.services.radar.current, bank)
        except Exception:
            logger.warning("Outage radar unavailable.", exc_info=True)
            return None
        if outage is None:
            return None
        return {"since": self.clock.time(outage.started_at), "report_count": outage.report_count}

    async def record_report(self, bank: str, diagnosis: str) -> None:
        try:
            if self.client_key is not None:
                decision = await self.services.limiter.check("outage_reports_per_address", self.client_key)
                if not decision.allowed:
                    logger.info("Outage report of %s not counted: its client is over %s.", bank, decision.limit)
                    return
            radar = self.services.radar
            verified = radar.settings.is_verified(self.channel)
            await asyncio.to_thread(radar.record_report, bank, diagnosis, self.conversation_id, verified, self.client_key)
        except Exception:
            logger.warning("Could not record a report of %s for the outage radar.", bank, exc_info=True)

    async def subscribe(self, bank: str, probe_url: str) -> bool:
        try:
            await asyncio.to_thread(self.services.notices.subscribe, self.conversation_id, self.channel, bank, probe_url)
            return True
        except Exception:
            logger.warning("Could not save a back-online notice for %s.", bank, exc_info=True)
            return False
