"""What the hand-off stores (``bot.handoff.tickets``, ``bot.handoff.agents``) hand out and raise.

Every store method returns frozen snapshots (``TicketView`` ...), never live ORM objects, so callers
may use them from any thread; ``to_dict()`` gives a JSON-ready deep copy. The input checks the two
stores share are here too.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Dict, List, Optional

from bot.db.models import OPEN_STATUSES

__all__ = [
    "AgentView",
    "EventView",
    "HandoffError",
    "MessageView",
    "TicketConflict",
    "TicketNotFound",
    "TicketView",
]

MAX_TEXT = 10_000


class HandoffError(Exception):
    """Something the caller asked for can't be done (the message says what, for people)."""


class TicketNotFound(HandoffError):
    pass


class TicketConflict(HandoffError):
    """The ticket is not in a state that allows this (already claimed, closed, held by someone else)."""


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value is not None else None


class _View:
    """to_dict(): a JSON-ready deep copy, datetimes as ISO 8601 strings."""

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _iso(value) if isinstance(value, datetime) else copy.deepcopy(value)
        return out


@dataclass(frozen=True)
class TicketView(_View):
    id: int
    conversation_id: str
    channel: str
    status: str
    diagnosis: Optional[str]
    bank: Optional[str]
    error_code: Optional[str]
    summary: Dict[str, Any]
    check_results: Any
    steps_tried: List[Any]
    transcript: List[Dict[str, Any]]
    reason: Optional[str]
    assigned_agent_id: Optional[int]
    assigned_agent_name: Optional[str]
    resolution_note: Optional[str]
    closed_by: Optional[str]
    created_at: datetime
    assigned_at: Optional[datetime]
    returned_at: Optional[datetime]
    closed_at: Optional[datetime]
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_dict(self, include_transcript: bool = True) -> Dict[str, Any]:
        data = super().to_dict()
        if not include_transcript:
            data.pop("transcript")
        return data


@dataclass(frozen=True)
class MessageView(_View):
    id: int
    ticket_id: int
    conversation_id: str
    sender: str
    agent_id: Optional[int]
    agent_name: Optional[str]
    text: str
    created_at: datetime


@dataclass(frozen=True)
class AgentView(_View):
    id: int
    username: str
    display_name: str
    is_active: bool
    created_at: datetime
    last_seen_at: Optional[datetime]


@dataclass(frozen=True)
class EventView(_View):
    id: int
    ticket_id: Optional[int]
    conversation_id: Optional[str]
    type: str
    actor: Optional[str]
    data: Dict[str, Any]
    created_at: datetime


# --------------------------------------------------------------------------- input checks
def required_str(value: Any, name: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{name}' must be a non-empty string.")
    if len(value) > max_len:
        raise ValueError(f"'{name}' is too long (at most {max_len} characters).")
    return value


def optional_text(value: Any, name: str, max_len: int = MAX_TEXT) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string.")
    value = value.strip()
    if len(value) > max_len:
        raise ValueError(f"'{name}' is too long (at most {max_len} characters).")
    return value or None


def json_copy(value: Any) -> Any:
    """A deep copy made only of JSON types (anything else becomes its str())."""
    return json.loads(json.dumps(value, default=str))
