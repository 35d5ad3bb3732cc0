"""The action server's side of the hand-off: queue a ticket, record how conversations ended.

Works on the same tickets as the agent console (``bot.handoff.tickets``, in the product database:
``HANDOFF_DB_URL``, SQLite under var/ by default), those of the action server's ``ActionServices``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional

from bot.desk import ActionServices
from bot.handoff.tickets import TicketStore
from bot.redaction import redact

logger = logging.getLogger(__name__)
TRANSCRIPT_LIMIT = 200  # the latest messages of the conversation, for the specialist


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


#: How a button payload typed or sent without its button is shown, when no earlier button explains it.
PAYLOAD_WORDS = {
    "affirm": "Yes",
    "deny": "No",
    "fixed_it": "It's fixed",
    "already_tried": "I already tried that",
    "ask_human": "Talk to a person",
    "continue_troubleshooting": "Keep troubleshooting",
    "stop": "Stop",
    "skip_step": "Skip this step",
    "notify_when_back": "Notify me when it's back",
    "remind_me": "Remind me tomorrow",
    "bank_site_problem": "The bank site shows a problem",
}


def shown_text(text: str, buttons: Mapping[str, str]) -> str:
    """What the customer saw themselves send: a clicked button's title ("No, still failing"), not its
    payload ("/deny"). ``buttons`` maps the payloads of the bot's earlier buttons to their titles."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return text
    if stripped in buttons:
        return buttons[stripped]
    intent = stripped[1:].split("{", 1)[0]
    return PAYLOAD_WORDS.get(intent, text)


def transcript(events: Iterable[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """User and bot messages of a Rasa SDK tracker's events, secrets masked in both; a button click
    reads as the button's title."""
    lines = []
    buttons: Dict[str, str] = {}
    for event in events:
        kind = event.get("event")
        if kind == "bot":
            for button in (event.get("data") or {}).get("buttons") or []:
                if isinstance(button, dict) and isinstance(button.get("payload"), str) and button.get("title"):
                    buttons[button["payload"].strip()] = str(button["title"])
        if kind not in ("user", "bot") or not event.get("text"):
            continue
        at = event.get("timestamp")
        text = shown_text(event["text"], buttons) if kind == "user" else event["text"]
        lines.append(
            {
                "sender": kind,
                "text": redact(text),  # the bot's words too: they may quote the user
                "at": datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="seconds") if at else "",
            }
        )
    return lines[-TRANSCRIPT_LIMIT:]


def queue(
    tickets: TicketStore, conversation_id: str, channel: str, summary: Dict[str, Any], lines: List[Dict[str, str]]
) -> Queued:
    """Opens (or finds) the conversation's ticket; blocking, run it in a thread."""
    ticket = tickets.open_ticket(conversation_id, channel, summary, lines)
    return Queued(ticket.id, tickets.queue_position(ticket.id), tickets.stats().get("median_wait_seconds"))


async def record_resolution(services: ActionServices, conversation_id: str, handoff_status: Optional[str]) -> None:
    """Counts a resolved conversation for the managers' bot-vs-human figures.

    After a specialist handed the chat back, the fix counts as theirs."""
    if handoff_status in ("waiting", "assigned", "closed"):
        return  # the ticket store counted it when the ticket closed
    resolved_by = "human" if handoff_status == "returned_to_bot" else "bot"
    try:
        await asyncio.to_thread(services.tickets.record_outcome, conversation_id, resolved_by)
    except Exception:
        logger.warning("Could not record the bot's resolution of %s", conversation_id, exc_info=True)
