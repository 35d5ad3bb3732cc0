"""Hand-off tickets: the queue of conversations waiting for a specialist, their messages, the
live-update events the console follows, the outcomes of conversations and the managers' figures.

A store on the product database (``bot.db.engine.Database``; tables ``tickets``, ``messages``,
``events``, ``outcomes``). Every public method is one short transaction and returns frozen snapshots
(``TicketView`` ..., ``bot.handoff.views``), never live ORM objects.

Concurrency guarantees, on both databases:

* at most one open (waiting/assigned) ticket per conversation: a partial UNIQUE index, and
  ``open_ticket`` returns the existing ticket instead of failing when it loses a race;
* a ticket is claimed by exactly one agent: ``UPDATE ... WHERE status = 'waiting'``;
* state changes re-check the ticket's status under a row lock (PostgreSQL ``FOR UPDATE``; on SQLite
  every writing transaction starts with ``BEGIN IMMEDIATE``, so writers are serialised);
* event ids are handed out in commit order (PostgreSQL: a transaction-scoped advisory lock around the
  insert of each event), so a reader following ``events_after(cursor)`` never skips an event that
  commits late with a lower id.
"""

from __future__ import annotations

import copy
import logging
import statistics
import zlib
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence

from sqlalchemy import and_, bindparam, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.engine import Database
from bot.db.models import (
    CLOSED_BY,
    MESSAGE_SENDERS,
    OPEN_STATUSES,
    RESOLVED_BY,
    TICKET_STATUSES,
    Agent,
    Event,
    Message,
    Outcome,
    Ticket,
)
from bot.handoff.agents import active_agent
from bot.handoff.views import (
    MAX_TEXT,
    EventView,
    MessageView,
    TicketConflict,
    TicketNotFound,
    TicketView,
    json_copy,
    optional_text,
    required_str,
)

__all__ = ["TicketStore"]

logger = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock around event inserts (a stable 32-bit number derived from a name).
EVENTS_LOCK_KEY = zlib.crc32(b"bankfeed.handoff.events")


def _summary_str(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


class TicketStore:
    """Tickets, their messages and events, and outcomes (blocking calls: run them in a thread from
    async code)."""

    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ plumbing
    def _emit(
        self,
        s: Session,
        type_: str,
        *,
        ticket_id: Optional[int],
        conversation_id: Optional[str],
        actor: Optional[str],
        data: Dict[str, Any],
        now: datetime,
    ) -> int:
        """Appends an event. Everything else the transaction writes must already be flushed: on
        PostgreSQL the events lock is held from here to the commit, so ids follow commit order."""
        s.flush()
        if self.db.dialect == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK_KEY})
        ev = Event(
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            type=type_,
            actor=actor,
            data=json_copy(data),
            created_at=now,
        )
        s.add(ev)
        s.flush()
        return ev.id

    @staticmethod
    def _ticket_view(t: Ticket, agent_name: Optional[str]) -> TicketView:
        return TicketView(
            id=t.id,
            conversation_id=t.conversation_id,
            channel=t.channel,
            status=t.status,
            diagnosis=t.diagnosis,
            bank=t.bank,
            error_code=t.error_code,
            summary=copy.deepcopy(t.summary) if t.summary is not None else {},
            check_results=copy.deepcopy(t.check_results),
            steps_tried=copy.deepcopy(t.steps_tried) if t.steps_tried is not None else [],
            transcript=copy.deepcopy(t.transcript) if t.transcript is not None else [],
            reason=t.reason,
            assigned_agent_id=t.assigned_agent_id,
            assigned_agent_name=agent_name,
            resolution_note=t.resolution_note,
            closed_by=t.closed_by,
            created_at=t.created_at,
            assigned_at=t.assigned_at,
            returned_at=t.returned_at,
            closed_at=t.closed_at,
            updated_at=t.updated_at,
        )

    def _view_of(self, s: Session, t: Ticket) -> TicketView:
        name = None
        if t.assigned_agent_id is not None:
            name = s.execute(select(Agent.display_name).where(Agent.id == t.assigned_agent_id)).scalar_one_or_none()
        return self._ticket_view(t, name)

    @staticmethod
    def _message_view(m: Message, agent_name: Optional[str]) -> MessageView:
        return MessageView(
            id=m.id,
            ticket_id=m.ticket_id,
            conversation_id=m.conversation_id,
            sender=m.sender,
            agent_id=m.agent_id,
            agent_name=agent_name,
            text=m.text,
            created_at=m.created_at,
        )

    @staticmethod
    def _event_view(e: Event) -> EventView:
        return EventView(
            id=e.id,
            ticket_id=e.ticket_id,
            conversation_id=e.conversation_id,
            type=e.type,
            actor=e.actor,
            data=copy.deepcopy(e.data) if e.data is not None else {},
            created_at=e.created_at,
        )

    def _locked_ticket(self, s: Session, ticket_id: int) -> Ticket:
        t = s.execute(
            select(Ticket).where(Ticket.id == ticket_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if t is None:
            raise TicketNotFound(f"There is no ticket {ticket_id}.")
        return t

    _OPEN_TICKET_QUERY = (
        select(Ticket.__table__.c.id)
        .where(Ticket.__table__.c.conversation_id == bindparam("conversation_id"), Ticket.__table__.c.status.in_(OPEN_STATUSES))
        .limit(1)
    )

    def has_open_ticket(self, conversation_id: str) -> bool:
        with self.db.one_statement() as conn:
            return conn.execute(self._OPEN_TICKET_QUERY, {"conversation_id": conversation_id}).first() is not None

    def _find_open(self, s: Session, conversation_id: str) -> Optional[Ticket]:
        return s.execute(
            select(Ticket).where(Ticket.conversation_id == conversation_id, Ticket.status.in_(OPEN_STATUSES))
        ).scalar_one_or_none()

    # ------------------------------------------------------------------ tickets
    def open_ticket(
        self, conversation_id: str, channel: str, summary: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]]
    ) -> TicketView:
        """Queues a ticket for the conversation, or returns its open ticket if it already has one."""
        conversation_id = required_str(conversation_id, "conversation_id", 255)
        channel = required_str(channel, "channel", 64)
        if summary is None:
            summary = {}
        if not isinstance(summary, Mapping):
            raise ValueError("'summary' must be a dict.")
        summary = json_copy(dict(summary))
        if transcript is None:
            transcript = []
        if isinstance(transcript, (str, bytes, Mapping)) or not isinstance(transcript, Sequence):
            raise ValueError("'transcript' must be a list of {sender, text, at} dicts.")
        lines = []
        for line in transcript:
            if not isinstance(line, Mapping):
                raise ValueError("'transcript' must be a list of {sender, text, at} dicts.")
            lines.append(
                {"sender": str(line.get("sender") or ""), "text": str(line.get("text") or ""), "at": str(line.get("at") or "")}
            )
        check_results = summary.get("check_results")
        steps = summary.get("steps_tried")
        try:
            with self.db.writing() as s:
                found = self._find_open(s, conversation_id)
                if found is not None:
                    return self._view_of(s, found)
                now = self.db.now()
                t = Ticket(
                    conversation_id=conversation_id,
                    channel=channel,
                    status="waiting",
                    diagnosis=_summary_str(summary.get("diagnosis")),
                    bank=_summary_str(summary.get("bank")),
                    error_code=_summary_str(summary.get("error_code")),
                    summary=summary,
                    check_results=check_results if check_results is not None else {},
                    steps_tried=list(steps) if isinstance(steps, list) else ([] if steps is None else [steps]),
                    transcript=lines,
                    reason=_summary_str(summary.get("reason")),
                    created_at=now,
                    updated_at=now,
                )
                s.add(t)
                s.flush()
                self._emit(
                    s,
                    "ticket_created",
                    ticket_id=t.id,
                    conversation_id=conversation_id,
                    actor="bot",
                    data={
                        "status": "waiting",
                        "channel": channel,
                        "reason": t.reason,
                        "diagnosis": t.diagnosis,
                        "bank": t.bank,
                        "error_code": t.error_code,
                    },
                    now=now,
                )
                view = self._ticket_view(t, None)
        except IntegrityError:
            # Lost a race with another process opening the same conversation's ticket: use theirs.
            with self.db.reading() as s:
                found = self._find_open(s, conversation_id)
                if found is None:
                    raise
                return self._view_of(s, found)
        logger.info("Hand-off ticket %s opened for a %s conversation.", view.id, channel)
        return view

    def get_ticket(self, ticket_id: int) -> TicketView:
        with self.db.reading() as s:
            t = s.get(Ticket, ticket_id)
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            return self._view_of(s, t)

    def open_ticket_for(self, conversation_id: str) -> Optional[TicketView]:
        # Every user message asks this and almost always the answer is "none": one indexed Core query
        # first, the ORM only when there is a ticket to show (py-spy: the ORM lookup was ~8 % of the
        # Rasa server's CPU per message).
        if not self.has_open_ticket(conversation_id):
            return None
        with self.db.reading() as s:
            t = self._find_open(s, conversation_id)
            return self._view_of(s, t) if t is not None else None

    def list_tickets(self, statuses: Optional[Sequence[str]] = None, limit: int = 100) -> List[TicketView]:
        """Tickets in ``statuses`` (all when None). Only open statuses asked for: oldest first (queue
        order); otherwise newest first (history)."""
        if isinstance(statuses, str):
            statuses = [s for s in statuses.split(",") if s]
        wanted = list(statuses) if statuses is not None else list(TICKET_STATUSES)
        unknown = set(wanted) - set(TICKET_STATUSES)
        if unknown:
            raise ValueError(f"Unknown ticket status: {', '.join(sorted(unknown))}")
        if not wanted:
            return []
        limit = max(1, min(int(limit), 1000))
        queue_order = set(wanted) <= set(OPEN_STATUSES)
        order = (Ticket.created_at.asc(), Ticket.id.asc()) if queue_order else (Ticket.created_at.desc(), Ticket.id.desc())
        query = (
            select(Ticket, Agent.display_name)
            .outerjoin(Agent, Ticket.assigned_agent_id == Agent.id)
            .where(Ticket.status.in_(wanted))
            .order_by(*order)
            .limit(limit)
        )
        with self.db.reading() as s:
            return [self._ticket_view(t, name) for t, name in s.execute(query).all()]

    def queue_position(self, ticket_id: int) -> Optional[int]:
        """1-based place among waiting tickets (oldest first); None if the ticket isn't waiting."""
        with self.db.reading() as s:
            t = s.get(Ticket, ticket_id)
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            if t.status != "waiting":
                return None
            ahead = s.execute(
                select(func.count(Ticket.id)).where(
                    Ticket.status == "waiting",
                    or_(
                        Ticket.created_at < t.created_at,
                        and_(Ticket.created_at == t.created_at, Ticket.id < t.id),
                    ),
                )
            ).scalar_one()
            return int(ahead) + 1

    def claim(self, ticket_id: int, agent_id: int) -> TicketView:
        """Assigns a waiting ticket to the agent; TicketConflict if someone else got there first."""
        with self.db.writing() as s:
            agent = active_agent(s, agent_id)
            now = self.db.now()
            result = s.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, Ticket.status == "waiting")
                .values(status="assigned", assigned_agent_id=agent.id, assigned_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            t = s.execute(
                select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if t is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            if result.rowcount != 1:
                if t.status == "assigned":
                    holder = self._view_of(s, t).assigned_agent_name or "another agent"
                    raise TicketConflict(f"Ticket {ticket_id} was already claimed by {holder}.")
                raise TicketConflict(f"Ticket {ticket_id} is {t.status.replace('_', ' ')}: it can't be claimed.")
            self._emit(
                s,
                "ticket_assigned",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent.id}",
                data={"status": "assigned", "agent_id": agent.id, "agent_name": agent.display_name},
                now=now,
            )
            return self._ticket_view(t, agent.display_name)

    def add_message(self, ticket_id: int, sender: str, text: str, agent_id: Optional[int] = None) -> MessageView:
        """Stores a chat message of the ticket. An agent may only write to a ticket assigned to them."""
        if sender not in MESSAGE_SENDERS:
            raise ValueError(f"Unknown sender {sender!r} (one of {', '.join(MESSAGE_SENDERS)}).")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("The message is empty.")
        if len(text) > MAX_TEXT:
            raise ValueError(f"The message is too long (at most {MAX_TEXT} characters).")
        if sender == "agent" and agent_id is None:
            raise ValueError("An agent's message needs the agent_id.")
        if sender != "agent" and agent_id is not None:
            raise ValueError("agent_id is only for messages from an agent.")
        with self.db.writing() as s:
            t = self._locked_ticket(s, ticket_id)
            agent_name = None
            if sender == "agent":
                if t.status != "assigned" or t.assigned_agent_id != agent_id:
                    raise TicketConflict(f"Ticket {ticket_id} is not assigned to you: claim it before replying.")
                agent_name = active_agent(s, agent_id).display_name
            now = self.db.now()
            m = Message(
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                sender=sender,
                agent_id=agent_id,
                text=text,
                created_at=now,
            )
            s.add(m)
            t.updated_at = now
            s.flush()
            self._emit(
                s,
                "message_created",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent_id}" if sender == "agent" else sender,
                data={"message_id": m.id, "sender": sender, "agent_id": agent_id, "agent_name": agent_name, "text": text},
                now=now,
            )
            return self._message_view(m, agent_name)

    def messages(self, ticket_id: int, after_id: int = 0) -> List[MessageView]:
        """The ticket's messages with an id above ``after_id``, oldest first."""
        with self.db.reading() as s:
            if s.get(Ticket, ticket_id) is None:
                raise TicketNotFound(f"There is no ticket {ticket_id}.")
            rows = s.execute(
                select(Message, Agent.display_name)
                .outerjoin(Agent, Message.agent_id == Agent.id)
                .where(Message.ticket_id == ticket_id, Message.id > int(after_id or 0))
                .order_by(Message.id)
            ).all()
            return [self._message_view(m, name) for m, name in rows]

    def conversation_messages(
        self, conversation_id: str, after_id: int = 0, senders: Sequence[str] = ("agent", "system")
    ) -> List[MessageView]:
        """Messages of all the conversation's tickets with an id above ``after_id``, oldest first.

        This is how a channel without push (REST) collects what specialists wrote."""
        with self.db.reading() as s:
            rows = s.execute(
                select(Message, Agent.display_name)
                .outerjoin(Agent, Message.agent_id == Agent.id)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.id > int(after_id or 0),
                    Message.sender.in_(list(senders)),
                )
                .order_by(Message.id)
                .limit(500)
            ).all()
            return [self._message_view(m, name) for m, name in rows]

    def return_to_bot(self, ticket_id: int, agent_id: int, note: Optional[str] = None) -> TicketView:
        """The agent holding the (assigned) ticket hands the conversation back to the bot."""
        note = optional_text(note, "note")
        with self.db.writing() as s:
            t = self._locked_ticket(s, ticket_id)
            if t.status != "assigned":
                raise TicketConflict(
                    f"Ticket {ticket_id} is {t.status.replace('_', ' ')}: only an assigned ticket can be handed back."
                )
            if t.assigned_agent_id != agent_id:
                raise TicketConflict(f"Ticket {ticket_id} is held by another agent.")
            agent = active_agent(s, agent_id)
            now = self.db.now()
            t.status = "returned_to_bot"
            t.returned_at = now
            t.updated_at = now
            if note:
                t.resolution_note = note
            self._emit(
                s,
                "ticket_returned",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=f"agent:{agent.id}",
                data={"status": "returned_to_bot", "agent_id": agent.id, "agent_name": agent.display_name, "note": note},
                now=now,
            )
            return self._ticket_view(t, agent.display_name)

    def close(self, ticket_id: int, closed_by: str, note: Optional[str] = None, agent_id: Optional[int] = None) -> TicketView:
        """Closes a waiting or assigned ticket. Any active agent may close (closed_by "agent", with
        agent_id); an outcome is recorded: "human" for an agent's close, "user_cancelled" for the user's,
        none for "system"."""
        if closed_by not in CLOSED_BY:
            raise ValueError(f"closed_by must be one of {', '.join(CLOSED_BY)}.")
        if closed_by == "agent" and agent_id is None:
            raise ValueError("An agent's close needs the agent_id.")
        note = optional_text(note, "note")
        with self.db.writing() as s:
            t = self._locked_ticket(s, ticket_id)
            if t.status not in OPEN_STATUSES:
                raise TicketConflict(f"Ticket {ticket_id} is already {t.status.replace('_', ' ')}.")
            agent = active_agent(s, agent_id) if agent_id is not None else None
            now = self.db.now()
            t.status = "closed"
            t.closed_at = now
            t.closed_by = closed_by
            t.updated_at = now
            if note:
                t.resolution_note = note
            actor = f"agent:{agent.id}" if agent is not None else closed_by
            self._emit(
                s,
                "ticket_closed",
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                actor=actor,
                data={
                    "status": "closed",
                    "closed_by": closed_by,
                    "agent_id": agent.id if agent else None,
                    "agent_name": agent.display_name if agent else None,
                    "note": note,
                },
                now=now,
            )
            resolved_by = {"agent": "human", "user": "user_cancelled"}.get(closed_by)
            if resolved_by:
                self._add_outcome(s, t.conversation_id, resolved_by, t.id, now, actor)
            return self._view_of(s, t)

    def _add_outcome(
        self, s: Session, conversation_id: str, resolved_by: str, ticket_id: Optional[int], now: datetime, actor: Optional[str]
    ) -> None:
        outcome = Outcome(conversation_id=conversation_id, resolved_by=resolved_by, ticket_id=ticket_id, created_at=now)
        s.add(outcome)
        s.flush()
        self._emit(
            s,
            "outcome_recorded",
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            actor=actor,
            data={"outcome_id": outcome.id, "resolved_by": resolved_by},
            now=now,
        )

    def record_outcome(self, conversation_id: str, resolved_by: str, ticket_id: Optional[int] = None) -> None:
        """Counts a finished conversation for the managers' figures (resolved by bot/human/user_cancelled)."""
        conversation_id = required_str(conversation_id, "conversation_id", 255)
        if resolved_by not in RESOLVED_BY:
            raise ValueError(f"resolved_by must be one of {', '.join(RESOLVED_BY)}.")
        with self.db.writing() as s:
            self._add_outcome(s, conversation_id, resolved_by, ticket_id, self.db.now(), "system")

    # ------------------------------------------------------------------ live updates and figures
    def events_after(self, cursor: int, limit: int = 200) -> List[EventView]:
        limit = max(1, min(int(limit), 1000))
        with self.db.reading() as s:
            rows = s.execute(select(Event).where(Event.id > int(cursor)).order_by(Event.id).limit(limit)).scalars().all()
            return [self._event_view(e) for e in rows]

    def latest_event_id(self) -> int:
        with self.db.reading() as s:
            return int(s.execute(select(func.max(Event.id))).scalar_one() or 0)

    def stats(self) -> Dict[str, Any]:
        with self.db.reading() as s:
            by_status = dict(s.execute(select(Ticket.status, func.count(Ticket.id)).group_by(Ticket.status)).all())
            waits = [
                (assigned - created).total_seconds()
                for created, assigned in s.execute(
                    select(Ticket.created_at, Ticket.assigned_at).where(Ticket.assigned_at.isnot(None))
                ).all()
            ]
            outcomes = dict(s.execute(select(Outcome.resolved_by, func.count(Outcome.id)).group_by(Outcome.resolved_by)).all())
        waiting, assigned = int(by_status.get("waiting", 0)), int(by_status.get("assigned", 0))
        return {
            "open": waiting + assigned,
            "waiting": waiting,
            "assigned": assigned,
            "median_wait_seconds": float(statistics.median(waits)) if waits else None,
            "resolved_by": {key: int(outcomes.get(key, 0)) for key in RESOLVED_BY},
            "tickets_total": int(sum(by_status.values())),
        }
