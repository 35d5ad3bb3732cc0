"""The action server's side of the "wait a day" reminders, for one conversation (bot/outages/reminders.py)."""

from __future__ import annotations

import asyncio
import logging

from bot.desk import ActionServices

logger = logging.getLogger(__name__)


class ReminderDesk:
    """Implements ``bot.troubleshooting.conversation.Reminders`` on the reminder book of ``services``;
    storage trouble never breaks the conversation (the customer is told the reminder couldn't be set
    and offered a person)."""

    def __init__(self, services: ActionServices, conversation_id: str, channel: str):
        self.services = services
        self.conversation_id = conversation_id
        self.channel = channel

    async def schedule(self, topic: str) -> bool:
        try:
            await asyncio.to_thread(self.services.reminders.schedule, self.conversation_id, self.channel, topic)
            return True
        except Exception:
            logger.warning("Could not save a reminder for %s.", self.conversation_id, exc_info=True)
            return False
