"""Answer each delivered chat event once, across replicas and restarts (table ``seen_events``).

Slack delivers an event again when it did not get our 200 within 3 seconds (our server was
restarting, overloaded, or the first answer was lost), and a mention in the support channel arrives
twice (``message`` and ``app_mention``, same channel and ``ts``). Every replica claims an event in the
product database before handling it:

* no row (or an expired one): the claim is inserted, this replica handles the event;
* ``done``: handled already, the delivery is dropped;
* ``claimed`` less than ``claim_seconds`` ago: another replica (or this one) is on it, dropped;
* ``claimed`` longer ago: whoever claimed it died or was restarted before finishing; taken over
  (compare-and-set on the old claim time, so only one taker wins).

The handler calls ``finish`` when the bot has answered, or ``release`` when it could not (the row is
deleted, so the next retry is handled). Rows are kept ``keep_hours`` (Slack retries for minutes).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import timedelta
from typing import Any, Optional

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from bot.db.engine import Database
from bot.db.models import SeenEvent

logger = logging.getLogger(__name__)

CLAIMED, DONE = "claimed", "done"
# outcomes of claim()
HANDLE, ALREADY_DONE, IN_PROGRESS = "handle", "done", "in_progress"
DEFAULT_CLAIM_SECONDS = 45.0
DEFAULT_KEEP_HOURS = 24.0
MAX_KEY = 255


def claim_seconds_from_env(env: Optional[Any] = None) -> float:
    env = os.environ if env is None else env
    try:
        value = float(env.get("SLACK_EVENT_CLAIM_SECONDS", "") or DEFAULT_CLAIM_SECONDS)
    except ValueError:
        value = DEFAULT_CLAIM_SECONDS
    return value if value > 0 else DEFAULT_CLAIM_SECONDS


class SeenEvents:
    def __init__(
        self,
        db: Database,
        claim_seconds: float = DEFAULT_CLAIM_SECONDS,
        keep_hours: float = DEFAULT_KEEP_HOURS,
        owner: Optional[str] = None,
    ):
        self.db = db
        self.claim_for = timedelta(seconds=claim_seconds)
        self.keep = timedelta(hours=keep_hours)
        self.owner = (owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}")[:64]
        self._claims = 0

    @staticmethod
    def _key(key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError("an event key must be a non-empty string")
        return key[:MAX_KEY]

    def claim(self, key: str, event_id: Optional[str] = None) -> str:
        """``HANDLE`` (this caller handles it now), ``ALREADY_DONE`` or ``IN_PROGRESS`` (drop it)."""
        key = self._key(key)
        self._claims += 1
        if self._claims % 200 == 1:
            self.purge()
        try:
            with self.db.writing() as s:
                now = self.db.now()
                row = s.execute(select(SeenEvent).where(SeenEvent.key == key).with_for_update()).scalar_one_or_none()
                if row is not None and row.expires_at <= now:
                    s.delete(row)
                    s.flush()
                    row = None
                if row is None:
                    s.add(
                        SeenEvent(
                            key=key,
                            event_id=(event_id or None) and event_id[:MAX_KEY],
                            state=CLAIMED,
                            owner=self.owner,
                            attempts=1,
                            claimed_at=now,
                            expires_at=now + self.keep,
                        )
                    )
                    s.flush()
                    return HANDLE
                if row.state == DONE:
                    return ALREADY_DONE
                if row.claimed_at > now - self.claim_for:
                    return IN_PROGRESS
                taken = s.execute(
                    update(SeenEvent)
                    .where(SeenEvent.key == key, SeenEvent.state == CLAIMED, SeenEvent.claimed_at == row.claimed_at)
                    .values(owner=self.owner, claimed_at=now, attempts=SeenEvent.attempts + 1)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if taken:
                    logger.warning("Taking over event %s: its claim by %s never finished.", key, row.owner)
                    return HANDLE
                return IN_PROGRESS
        except IntegrityError:
            return IN_PROGRESS  # another replica inserted the claim a moment before us

    def finish(self, key: str) -> None:
        """The event was handled: later deliveries of it are dropped."""
        with self.db.writing() as s:
            s.execute(
                update(SeenEvent)
                .where(SeenEvent.key == self._key(key), SeenEvent.owner == self.owner)
                .values(state=DONE, finished_at=self.db.now())
                .execution_options(synchronize_session=False)
            )

    def release(self, key: str) -> None:
        """The event could not be handled: the next delivery of it will be."""
        with self.db.writing() as s:
            s.execute(
                delete(SeenEvent)
                .where(SeenEvent.key == self._key(key), SeenEvent.owner == self.owner, SeenEvent.state == CLAIMED)
                .execution_options(synchronize_session=False)
            )

    def state(self, key: str) -> Optional[str]:
        with self.db.reading() as s:
            return s.execute(select(SeenEvent.state).where(SeenEvent.key == self._key(key))).scalar_one_or_none()

    def purge(self) -> int:
        """Deletes expired rows; returns how many."""
        try:
            with self.db.writing() as s:
                return (
                    s.execute(
                        delete(SeenEvent)
                        .where(SeenEvent.expires_at <= self.db.now())
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    or 0
                )
        except Exception:
            logger.warning("Could not purge old seen events.", exc_info=True)
            return 0
