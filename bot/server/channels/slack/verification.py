"""Which Slack requests are answered, and each delivery once.

* **Signatures** (:func:`verify_signature`): every request must carry a valid ``X-Slack-Signature``
  for its raw body and an ``X-Slack-Request-Timestamp`` of ASCII digits within 5 minutes of now
  (either direction: a replay, or a clock far off, is refused); compared in constant time. Rasa's
  check accepts lax timestamps (``int(" +1_700_000_000 ")``).
* **Each delivery once** (:class:`Deliveries`): Rasa ignores a retry only when its reason is
  ``http_timeout`` (other reasons are answered a second time), so a first delivery lost while the
  server restarted was never answered. Here every delivery (a message: channel + ``ts``, which a
  retry and the ``message`` / ``app_mention`` twin share; a button click) is claimed in the product
  database before it is handled (``bot/handoff/seen_events.py``): a retry of a delivery that was
  answered, or is being answered, is dropped; one whose handling never finished (the process died:
  the claim is older than ``SLACK_EVENT_CLAIM_SECONDS``, default 45) or could not answer
  (:class:`AnswerWatch`: all the bot said was an apology, e.g. the action server was down) is
  answered now. Several replicas sharing the database answer each delivery once. Without the
  database, this process remembers what it saw.

Set-up: docs/slack.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Hashable, Iterable, Optional

from bot.handoff.seen_events import ALREADY_DONE, HANDLE, SeenEvents, claim_seconds_from_env
from bot.server.channels.routing import NO_ANSWER, RecordingOutput

logger = logging.getLogger(__name__)

SIGNATURE_MAX_AGE = 5 * 60  # seconds either side of now, as Slack recommends
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
RETRY_REASON_HEADER = "X-Slack-Retry-Reason"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def verify_signature(
    secret: str, timestamp: Optional[str], signature: Optional[str], body: bytes, now: Optional[float] = None
) -> bool:
    """Slack's v0 request signature: ``v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<raw body>"))``.

    False for a missing secret, header or signature, a timestamp that is not plain digits or is more
    than 5 minutes away from ``now`` (a replay, or a clock far off), or a signature that differs.
    """
    if not secret or not timestamp or not signature:
        return False
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > SIGNATURE_MAX_AGE:
        return False
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + timestamp.encode("ascii") + b":" + (body or b""), hashlib.sha256)
    expected = ("v0=" + digest.hexdigest()).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class _Seen:
    """Keys seen in the last ``ttl`` seconds (bounded), to drop duplicate deliveries."""

    def __init__(self, ttl: float = 15 * 60, size: int = 20_000):
        self.ttl, self.size = ttl, size
        self._keys: "OrderedDict[Hashable, float]" = OrderedDict()

    def check_and_add(self, keys: Iterable[Hashable]) -> bool:
        """True if any of ``keys`` was seen already; records them all either way."""
        now = time.monotonic()
        while self._keys:
            oldest, at = next(iter(self._keys.items()))
            if now - at <= self.ttl and len(self._keys) <= self.size:
                break
            self._keys.popitem(last=False)
        keys = list(keys)
        seen = any(k in self._keys for k in keys)
        for k in keys:
            self._keys[k] = now
            self._keys.move_to_end(k)
        return seen


@dataclass(frozen=True)
class Claim:
    """What identifies one delivery: the message (channel + ts: a retry and the app_mention twin
    share it) or the click; Slack's ``event_id`` is kept with it."""

    key: str
    event_id: Optional[str] = None


class AnswerWatch(RecordingOutput):
    """The bot's output for one message, noting whether all it could say was an apology: the hand-off
    router's ``NO_ANSWER``, or Rasa's ``utter_default`` ("say that again", when an action failed, e.g.
    the action server was down). Nothing at all (a specialist holds the chat) is not an apology."""

    APOLOGIES = ("utter_default",)
    answers = 0
    apologies = 0

    @property
    def no_answer(self) -> bool:
        return self.apologies > 0 and self.answers == 0

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        if message.get("utter_action") in self.APOLOGIES:
            self.apologies += 1
        else:
            self.answers += 1
        await super().send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        if text == NO_ANSWER:
            self.apologies += 1
        else:
            self.answers += 1
        await super().send_text_message(recipient_id, text, **kwargs)


class Deliveries:
    """Handles each Slack delivery once: claimed in the product database (shared by every replica),
    or remembered by this process while there is no database."""

    def __init__(self) -> None:
        self._seen = _Seen()  # only while the product database is unreachable: see once()
        self._claims: Optional[SeenEvents] = None

    def _seen_events(self, router: Any) -> Optional[SeenEvents]:
        """The product database's claims (shared by every replica), or None without a database."""
        store = getattr(getattr(router, "services", None), "database", None)
        if store is None:
            return None
        if self._claims is None or self._claims.db is not store:
            self._claims = SeenEvents(store, claim_seconds_from_env())
        return self._claims

    async def once(
        self, router: Any, claim: Optional[Claim], handle: Callable[[], Awaitable[Any]], watch: Optional[AnswerWatch] = None
    ) -> None:
        """Handles a delivery unless it was (or is being) handled already. Marked done once the bot
        answered; released when it could not answer (the action server down: the user was told to
        send it again) or the handling failed, so a retry of it is handled."""
        if claim is None:
            await handle()
            return
        claims = self._seen_events(router)
        if claims is None:
            if not self._seen.check_and_add([claim.key]):  # no database: this process remembers
                await handle()
            return
        try:
            outcome = await asyncio.to_thread(claims.claim, claim.key, claim.event_id)
        except Exception:
            logger.exception("Could not claim a Slack event in the product database; remembering it in this process.")
            outcome = HANDLE if not self._seen.check_and_add([claim.key]) else ALREADY_DONE
            claims = None
        if outcome != HANDLE:
            logger.info("Dropping a repeated Slack delivery (%s).", outcome)
            return
        answered = False
        try:
            await handle()
            answered = watch is None or not watch.no_answer
        finally:
            if claims is not None:
                try:
                    await asyncio.to_thread(claims.finish if answered else claims.release, claim.key)
                except Exception:
                    logger.exception("Could not record the outcome of a Slack event.")
