"""Where a Slack or Teams conversation is reached, kept on the server.

Written only by the Slack channel after a request's signature is verified, and by the Teams channel
after its Bot Framework JWT is (``serviceurl`` claim = the activity's ``serviceUrl``); read by the
hand-off service and the back-online notifier for every message they deliver later. Nothing a web
client sends (a REST body, socket metadata, the tracker's latest metadata) can change where those go.

Blocking calls (run them in a thread from async code). Each conversation has one row, replaced
when the conversation moves (a Teams ``serviceUrl`` change); an unchanged reference is not written
again for ``CACHE_SECONDS`` (this process remembers what it wrote).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from sqlalchemy.exc import IntegrityError

from bot import sessions
from bot.db.engine import Database
from bot.db.models import ConversationRef

#: Channels that deliver through a stored reference (the web channels push by their issued id).
REFERENCE_CHANNELS = ("slack", "botframework")
MAX_REFERENCE_BYTES = 4096
CACHE_SECONDS = 600.0
CACHE_SIZE = 10_000


@dataclass(frozen=True)
class ConversationReference:
    conversation_id: str
    channel: str
    reference: Dict[str, Any]


class ConversationRefs:
    def __init__(self, db: Database):
        self.db = db
        self._written: "OrderedDict[str, Tuple[str, float]]" = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, conversation_id: str, channel: str, reference: Mapping[str, Any]) -> None:
        """Stores where ``conversation_id`` (of ``channel``, which its prefix must name) is reached."""
        if channel not in REFERENCE_CHANNELS:
            raise ValueError(f"The {channel} channel keeps no conversation references.")
        if sessions.channel_of(conversation_id) != channel:
            raise ValueError(f"Conversation id {conversation_id!r} is not of the {channel} channel.")
        if len(conversation_id) > 255:
            raise ValueError("The conversation id is too long.")
        encoded = json.dumps(dict(reference), sort_keys=True, default=str)
        if len(encoded) > MAX_REFERENCE_BYTES:
            raise ValueError("The conversation reference is too large.")
        key = f"{channel}\n{encoded}"
        with self._lock:
            known = self._written.get(conversation_id)
            if known is not None and known[0] == key and time.monotonic() - known[1] < CACHE_SECONDS:
                return
        for attempt in (1, 2):
            try:
                with self.db.writing() as s:
                    row = s.get(ConversationRef, conversation_id)
                    if row is None:
                        s.add(
                            ConversationRef(
                                conversation_id=conversation_id,
                                channel=channel,
                                reference=json.loads(encoded),
                                updated_at=self.db.now(),
                            )
                        )
                    else:
                        row.channel, row.reference, row.updated_at = channel, json.loads(encoded), self.db.now()
                break
            except IntegrityError:  # another process inserted it first: update theirs
                if attempt == 2:
                    raise
        with self._lock:
            self._written[conversation_id] = (key, time.monotonic())
            self._written.move_to_end(conversation_id)
            while len(self._written) > CACHE_SIZE:
                self._written.popitem(last=False)

    def get(self, conversation_id: str) -> Optional[ConversationReference]:
        """The stored reference of ``conversation_id``, or None (never reached through a verified request)."""
        with self.db.reading() as s:
            row = s.get(ConversationRef, conversation_id)
            if row is None:
                return None
            return ConversationReference(row.conversation_id, row.channel, dict(row.reference or {}))
