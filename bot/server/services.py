"""The services of one Rasa server process: built once when the server starts, reached directly.

Every blueprint of ours that needs them (the chat channels through their hand-off router, the agent
console, the status and upload routes) calls ``Services.attach(blueprint)``; the first one to start
builds them (``Services.install``) and leaves them on ``app.ctx.services``:

* ``database``: the product database (``bot.db.engine.Database``, ``HANDOFF_DB_URL``), migrated to
  the latest schema first;
* the stores on it: ``tickets``, ``agents``, ``refs`` (conversation references), ``unknown_banks``,
  ``radar`` (the outage radar), ``notices`` (back-online notices), ``reminders`` ("wait a day");
* ``prober``: the bank-site prober the back-online notifier re-probes banks with;
* ``handoff``: the hand-off service (``bot.server.handoff``: routing user messages, agents' actions);
* the background tasks: the back-online notifier and the reminder sender (``bot.server.outages``),
  cancelled when the server stops.

A route takes what it needs (``request.app.ctx.services.radar`` ...); blocking store calls go
through ``services.run`` (a worker thread). Nothing reaches one service through another.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from bot.banks.site_prober import SiteProber
from bot.db.engine import Database
from bot.handoff.agents import AgentStore
from bot.handoff.conversation_refs import ConversationRefs
from bot.handoff.tickets import TicketStore
from bot.handoff.unknown_banks import UnknownBanks
from bot.in_thread import in_thread
from bot.outages.notices import NoticeBook
from bot.outages.radar import OutageRadar
from bot.outages.reminders import ReminderBook
from bot.server.handoff import HandoffService
from bot.server.outages import start_notifier, start_reminders
from bot.settings import probe_settings, radar_settings, reminder_settings

logger = logging.getLogger(__name__)


@dataclass
class Services:
    database: Database
    tickets: TicketStore
    agents: AgentStore
    refs: ConversationRefs
    unknown_banks: UnknownBanks
    radar: OutageRadar
    notices: NoticeBook
    reminders: ReminderBook
    prober: SiteProber
    handoff: HandoffService
    background: List["asyncio.Task[None]"] = field(default_factory=list)
    stopped: bool = False

    @classmethod
    def build(cls, app: Any, database: Database) -> "Services":
        """The services on ``database`` for the server ``app`` (nothing started yet)."""
        tickets, refs = TicketStore(database), ConversationRefs(database)
        radar = radar_settings()
        return cls(
            database=database,
            tickets=tickets,
            agents=AgentStore(database),
            refs=refs,
            unknown_banks=UnknownBanks(database),
            radar=OutageRadar(database, radar),
            notices=NoticeBook(database, radar),
            reminders=ReminderBook(database, reminder_settings()),
            prober=SiteProber(probe_settings()),
            handoff=HandoffService(app, tickets, refs),
        )

    @staticmethod
    def of(app: Any) -> Optional["Services"]:
        """The services of the server ``app``, or None before they are installed."""
        return getattr(getattr(app, "ctx", None), "services", None)

    @classmethod
    async def install(cls, app: Any) -> "Services":
        """The services of this server process: built, the schema migrated and the background tasks
        started on the first call; the same object afterwards."""
        services = cls.of(app)
        if services is None:
            database = Database()
            await asyncio.to_thread(database.migrate)
            services = cls.build(app, database)
            app.ctx.services = services
            services.start()
        return services

    @classmethod
    def attach(cls, blueprint: Any, on_installed: Optional[Callable[["Services"], None]] = None) -> Any:
        """Installs the services when the blueprint's server starts (then calls ``on_installed`` with
        them), and stops them cleanly at the end."""

        async def start(app: Any, _loop: Any) -> None:
            services = await cls.install(app)
            if on_installed is not None:
                on_installed(services)

        async def stop(app: Any, _loop: Any) -> None:
            services = cls.of(app)
            if services is not None:
                await services.stop()

        blueprint.listener("before_server_start")(start)
        blueprint.listener("before_server_stop")(stop)
        return blueprint

    def start(self) -> None:
        """Starts the background tasks (one set per replica: every notice and reminder is claimed in
        the database before it is sent)."""
        tell = self.handoff.tell
        self.background = [
            start_reminders(self.reminders, tell),
            start_notifier(self.radar, self.notices, self.prober, tell),
        ]

    async def stop(self) -> None:
        """A clean shutdown (once, however many blueprints ask): the background tasks are cancelled
        and awaited, the prober's connections closed."""
        if self.stopped:
            return
        self.stopped = True
        tasks, self.background = self.background, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.prober.aclose()

    run = staticmethod(in_thread)  # a blocking store call, in a worker thread
