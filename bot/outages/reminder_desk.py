"""The action server's side of the "wait a day" reminders, for one conversation (bot/outages/reminders.py)."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Optional

from bot.handoff.desk import database
from bot.settings import reminder_settings
from bot.outages.reminders import ReminderBook

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def book() -> ReminderBook:
    return ReminderBook(database(), reminder_settings())


class ReminderDesk:
    """Implements ``bot.troubleshooting.conversation.Reminders``; storage trouble never breaks the conversation
    (the customer is told the reminder couldn't be set and offered a person)."""

    def __init__(self, conversation_id: str, channel: str, reminders: Optional[ReminderBook] = None):
        self.conversation_id = conversation_id
        self.channel = channel
        self._book = reminders

    async def schedule(self, topic: str) -> bool:
        try:
            await asyncio.to_thread((self._book or book()).schedule, self.conversation_id, self.channel, topic)
            return True
        except Exception:
            logger.warning("Could not save a reminder for %s.", self.conversation_id, exc_info=True)
            return False
