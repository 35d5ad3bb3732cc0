"""What the action server's actions use: ``ActionServices``, one set per action-server process.

The Rasa SDK builds each action itself, without arguments, so the actions of one process share one
``ActionServices`` (``actions.actions.PROCESS_SERVICES``); tests build their own and hand it to the
actions they run. It holds:

* the product database (``HANDOFF_DB_URL``) and the stores the actions write to: ``tickets``
  (hand-off tickets and outcomes), ``radar`` (the outage radar: one per process, it caches each
  bank's baseline), ``notices`` (back-online notices), ``reminders`` ("wait a day");
* ``directory``: the bank directory (``BANK_DIRECTORY_PATH``, else data/banks.yml);
* ``prober``: the bank-site prober (one per process, so its cache and in-flight coalescing are shared);
* ``limiter``: the per-client rate limits (outage reports counted per client address).

Each part is built the first time it is asked for, from the settings (``bankfeed.yml``), and kept.
Nothing is loaded or connected before that: a database that is misconfigured or down costs only
what needs it (every use of it is guarded where it is made, and the conversation goes on).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional, Union

from bot.banks.directory import BankDirectory
from bot.banks.site_prober import SiteProber
from bot.db.engine import Clock, Database
from bot.handoff.tickets import TicketStore
from bot.outages.notices import NoticeBook
from bot.outages.radar import OutageRadar
from bot.outages.reminders import ReminderBook
from bot.ratelimit import RateLimiter
from bot.settings import probe_settings, radar_settings, reminder_settings

__all__ = ["ActionServices"]


@dataclass(frozen=True)
class _Stores:
    database: Database
    tickets: TicketStore
    radar: OutageRadar
    notices: NoticeBook
    reminders: ReminderBook


class ActionServices:
    """``database``: a ``Database``, or its URL (default: ``HANDOFF_DB_URL``, else SQLite under var/),
    with ``clock`` for a URL; ``directory``, ``prober`` and ``limiter``: given ones instead of the settings'."""

    def __init__(
        self,
        database: Union[Database, str, None] = None,
        *,
        clock: Optional[Clock] = None,
        directory: Optional[BankDirectory] = None,
        prober: Optional[SiteProber] = None,
        limiter: Optional[RateLimiter] = None,
    ):
        self._database = database
        self._clock = clock
        self._directory = directory
        self._prober = prober
        self._limiter = limiter
        self._stores: Optional[_Stores] = None
        self._lock = threading.Lock()

    def _on_database(self) -> _Stores:
        with self._lock:
            if self._stores is None:
                given = self._database
                db = given if isinstance(given, Database) else Database(given, clock=self._clock)
                radar = radar_settings()
                self._stores = _Stores(
                    db, TicketStore(db), OutageRadar(db, radar), NoticeBook(db, radar), ReminderBook(db, reminder_settings())
                )
            return self._stores

    @property
    def database(self) -> Database:
        return self._on_database().database

    @property
    def tickets(self) -> TicketStore:
        return self._on_database().tickets

    @property
    def radar(self) -> OutageRadar:
        return self._on_database().radar

    @property
    def notices(self) -> NoticeBook:
        return self._on_database().notices

    @property
    def reminders(self) -> ReminderBook:
        return self._on_database().reminders

    @property
    def directory(self) -> BankDirectory:
        with self._lock:
            if self._directory is None:
                self._directory = BankDirectory.load()
            return self._directory

    @property
    def prober(self) -> SiteProber:
        with self._lock:
            if self._prober is None:
                self._prober = SiteProber(probe_settings())
            return self._prober

    @property
    def limiter(self) -> RateLimiter:
        with self._lock:
            if self._limiter is None:
                self._limiter = RateLimiter.from_settings()
            return self._limiter

    async def aclose(self) -> None:
        """Closes what was opened: the prober's connections, the database's pool (it reconnects if used again)."""
        with self._lock:
            prober, stores = self._prober, self._stores
        if prober is not None:
            await prober.aclose()
        if stores is not None:
            stores.database.dispose()
