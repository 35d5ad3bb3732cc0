"""The action server's side of the hand-off: queue a ticket, record how conversations ended.

Talks to the same hand-off database as the agent console (``HANDOFF_DB_URL``, SQLite under var/ by
default) through ``bot.handoff.store``.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional

from bot.handoff.store import HandoffStore
from bot.redaction import redact

logger = logging.getLogger(__name__)
TRANSCRIPT_LIMIT = 200  # the latest messages of the conversation, for the specialist


@functools.lru_cache(maxsize=1)
def store() -> HandoffStore:
    return HandoffStore()


@dataclass(frozen=True)
class Queued:
    ticket_id: int
    position: Optional[int]
    median_wait_seconds: Optional[float]

    def wording(self) -> Dict[str, str]:
        position = f"You're number {self.position} in the queue" if self.position else "You're in the queue"
        if self.median_wait_seconds:
            minutes = max(1, round(self.median_wait_seconds / 60))
            wait = f", and specialists usually pick up within about {minutes} minute{'s' if minutes != 1 else ''}"
        else:
            wait = ""
        return {"queue_position": position, "expected_wait": wait}


def transcript(events: Iterable[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """User and bot messages of a Rasa SDK tracker's events, secrets masked in both."""
    lines = []
    for event in events:
        kind = event.get("event")
        if kind not in ("user", "bot") or not event.get("text"):
            continue
        at = event.get("timestamp")
        lines.append(
            {
                "sender": kind,
                "text": redact(event["text"]),  # the bot's words too: they may quote the user
                "at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="seconds") if at else "",
            }
        )
    return lines[-TRANSCRIPT_LIMIT:]


def queue(conversation_id: str, channel: str, summary: Dict[str, Any], lines: List[Dict[str, str]]) -> Queued:
    """Opens (or finds) the conversation's ticket; blocking, run it in a thread."""
    s = store()
    ticket = s.open_ticket(conversation_id, channel, summary, lines)
    return Queued(ticket.id, s.queue_position(ticket.id), s.stats().get("median_wait_seconds"))


async def record_resolution(conversation_id: str, handoff_status: Optional[str]) -> None:
    """Counts a resolved conversation for the managers' bot-vs-human figures.

    After a specialist handed the chat back, the fix counts as theirs."""
    if handoff_status in ("waiting", "assigned", "closed"):
        return  # the hand-off store counted it when the ticket closed
    resolved_by = "human" if handoff_status == "returned_to_bot" else "bot"
    try:
        await asyncio.to_thread(store().record_outcome, conversation_id, resolved_by)
    except Exception:
        logger.warning("Could not record the bot's resolution of %s", conversation_id, exc_info=True)
