"""The product database (``bot.db.engine``) and the hand-off stores on it (tickets, agents), against
both databases it supports: SQLite (a temp file) and real PostgreSQL.

PostgreSQL is required, not optional: CI starts it. Each test module gets a fresh database with a
random name on ``postgresql://postgres@127.0.0.1:5432`` (override with HANDOFF_TEST_PG_ADMIN_URL),
dropped at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.db import engine as engine_module
from bot.db.engine import Database, default_url
from bot.db.models import metadata
from bot.handoff import agents as agents_module
from bot.handoff import passwords
from bot.handoff.agents import AgentStore
from bot.handoff.tickets import TicketStore
from bot.handoff.views import HandoffError, TicketConflict, TicketNotFound

ROOT = Path(__file__).resolve().parent.parent
TABLES = ["agents", "agent_sessions", "tickets", "messages", "events", "outcomes"]
PASSWORD = "correct horse battery"
SUMMARY = {
    "reason": "all_steps_tried",
    "diagnosis": "bank_connection_102",
    "bank": "Chase",
    "bank_url": "https://secure.chase.com",
    "error_code": "102",
    "check_results": {"Chase": {"status": "up", "reason": "200 OK"}},
    "steps_tried": ["wait_and_retry", "update_connection"],
}
TRANSCRIPT = [
    {"sender": "user", "text": "bank feed error 102 on Chase", "at": "2025-01-01T09:00:00+00:00"},
    {"sender": "bot", "text": "Let's check the bank's site.", "at": "2025-01-01T09:00:01+00:00"},
]


from tests.pg import db, fresh_pg_database, pg_url  # noqa: E402,F401 (fixtures)


# --------------------------------------------------------------------------- fixtures
class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 6, 9, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tickets(db) -> TicketStore:
    return TicketStore(db)


@pytest.fixture
def agent_store(db) -> AgentStore:
    return AgentStore(db)


@pytest.fixture
def agents(agent_store):
    """Two active agents."""
    return agent_store.create_agent("dana", PASSWORD, "Dana"), agent_store.create_agent("eli", PASSWORD, "Eli")


def open_ticket(tickets: TicketStore, conversation_id: str = None, channel: str = "rest", **summary: Any):
    return tickets.open_ticket(conversation_id or f"conv-{secrets.token_hex(4)}", channel, {**SUMMARY, **summary}, TRANSCRIPT)


def run_together(n: int, fn: Callable[[int], Any]) -> List[Any]:
    """Runs fn(0..n-1) in n threads released at once; returns results (exceptions as values)."""
    barrier = threading.Barrier(n, timeout=30)
    results: List[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # collected, asserted by the test
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a worker thread hung"
    return results


def table_dump(db: Database) -> str:
    with db.engine.connect() as conn:
        return json.dumps(
            {table: [list(map(str, row)) for row in conn.exec_driver_sql(f"SELECT * FROM {table}")] for table in TABLES}
        )


# --------------------------------------------------------------------------- schema
def test_migrate_twice_is_fine_and_matches_the_models(db):
    db.migrate()
    db.migrate()
    assert db.schema_revision() == db.head_revision() == "0008"
    names = set(sa.inspect(db.engine).get_table_names())
    assert set(TABLES) <= names

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": engine_module.VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, metadata) == []

    indexes = {ix["name"]: ix for ix in sa.inspect(db.engine).get_indexes("tickets")}
    assert indexes["uq_tickets_open_conversation"]["unique"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_concurrent_migrations_of_a_fresh_database(kind, tmp_path):
    def migrate_all(url: str) -> None:
        stores = [Database(url) for _ in range(3)]
        try:
            results = run_together(3, lambda i: stores[i].migrate())
            assert results == [None, None, None], results
            assert stores[0].schema_revision() == "0008"
        finally:
            for s in stores:
                s.dispose()

    if kind == "sqlite":
        migrate_all(f"sqlite:///{tmp_path / 'fresh.db'}")
    else:
        with fresh_pg_database() as url:
            migrate_all(url)


def test_default_url(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDOFF_DB_URL", "postgresql://u@db/handoff")
    assert default_url() == "postgresql://u@db/handoff"
    monkeypatch.delenv("HANDOFF_DB_URL")
    monkeypatch.setenv("BANKFEED_VAR_DIR", str(tmp_path / "state"))
    assert default_url() == f"sqlite:///{tmp_path / 'state' / 'handoff.db'}"
    assert (tmp_path / "state").is_dir()


def test_in_memory_sqlite_is_refused():
    with pytest.raises(ValueError, match="In-memory"):
        Database("sqlite://")


# --------------------------------------------------------------------------- tickets
def test_open_ticket_copies_the_summary_and_is_idempotent(tickets, clock):
    ticket = tickets.open_ticket("conv-1", "socketio", SUMMARY, TRANSCRIPT)
    assert ticket.status == "waiting" and ticket.channel == "socketio" and ticket.conversation_id == "conv-1"
    assert (ticket.diagnosis, ticket.bank, ticket.error_code, ticket.reason) == (
        "bank_connection_102",
        "Chase",
        "102",
        "all_steps_tried",
    )
    assert ticket.check_results == SUMMARY["check_results"]
    assert ticket.steps_tried == SUMMARY["steps_tried"]
    assert ticket.summary == SUMMARY and ticket.transcript == TRANSCRIPT
    assert ticket.created_at == clock.now and ticket.created_at.tzinfo is not None

    clock.advance(seconds=5)
    again = tickets.open_ticket("conv-1", "socketio", {**SUMMARY, "bank": "Wells Fargo"}, [])
    assert again.id == ticket.id and again.bank == "Chase"
    assert tickets.open_ticket_for("conv-1").id == ticket.id
    assert tickets.open_ticket_for("conv-2") is None
    assert tickets.stats()["tickets_total"] == 1
    assert [e.type for e in tickets.events_after(0)] == ["ticket_created"]

    fetched = tickets.get_ticket(ticket.id)
    assert fetched == ticket
    data = json.loads(json.dumps(fetched.to_dict()))
    assert data["created_at"] == "2025-01-06T09:00:00+00:00" and data["assigned_at"] is None
    assert "transcript" not in fetched.to_dict(include_transcript=False)
    with pytest.raises(TicketNotFound):
        tickets.get_ticket(ticket.id + 1000)


def test_views_are_snapshots(tickets):
    ticket = open_ticket(tickets, "conv-snap")
    ticket.summary["bank"] = "changed by caller"
    ticket.to_dict()["check_results"]["Chase"]["status"] = "changed"
    assert tickets.get_ticket(ticket.id).summary["bank"] == "Chase"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ticket.status = "closed"  # frozen


def test_open_ticket_validates_its_input(tickets):
    with pytest.raises(ValueError):
        tickets.open_ticket("", "rest", SUMMARY, [])
    with pytest.raises(ValueError):
        tickets.open_ticket("conv", "rest", "not a dict", [])
    with pytest.raises(ValueError):
        tickets.open_ticket("conv", "rest", SUMMARY, "not a list")
    assert tickets.open_ticket_for("conv") is None


def test_one_open_ticket_per_conversation_even_when_threads_race(tickets):
    results = run_together(8, lambda i: tickets.open_ticket("conv-race", "rest", SUMMARY, TRANSCRIPT))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    assert len({t.id for t in results}) == 1
    assert tickets.stats()["tickets_total"] == 1
    assert [e.type for e in tickets.events_after(0)] == ["ticket_created"]


def test_the_database_itself_allows_one_open_ticket_per_conversation(db, tickets):
    ticket = open_ticket(tickets, "conv-ix")
    insert = sa.text(
        "INSERT INTO tickets (conversation_id, channel, status, summary, check_results, steps_tried, transcript,"
        " created_at, updated_at) VALUES ('conv-ix', 'rest', :status, '{}', '{}', '[]', '[]', :now, :now)"
    )
    now = "2025-01-06 09:00:00.000000" if db.dialect == "sqlite" else "2025-01-06 09:00:00+00"
    for status in ("waiting", "assigned"):
        with pytest.raises(IntegrityError):
            with db.engine.begin() as conn:
                conn.execute(insert, {"status": status, "now": now})
    for status in ("closed", "returned_to_bot"):  # finished tickets don't count
        with db.engine.begin() as conn:
            conn.execute(insert, {"status": status, "now": now})
    assert tickets.open_ticket_for("conv-ix").id == ticket.id
    assert tickets.stats()["tickets_total"] == 3


def test_open_ticket_uses_the_winners_ticket_after_losing_a_race(tickets, monkeypatch):
    """The pre-check misses the other process's ticket; the unique index catches it; theirs is returned."""
    theirs = open_ticket(tickets, "conv-lost")
    real = tickets._find_open
    calls = []

    def blind_first_time(session, conversation_id):
        calls.append(conversation_id)
        return None if len(calls) == 1 else real(session, conversation_id)

    monkeypatch.setattr(tickets, "_find_open", blind_first_time)
    mine = tickets.open_ticket("conv-lost", "rest", SUMMARY, [])
    assert mine.id == theirs.id and len(calls) == 2
    assert tickets.stats()["tickets_total"] == 1


def test_queue_positions_and_listing(tickets, clock, agents):
    dana, _ = agents
    first = open_ticket(tickets, "q1")
    clock.advance(seconds=10)
    second = open_ticket(tickets, "q2")
    clock.advance(seconds=10)
    third = open_ticket(tickets, "q3")
    assert [tickets.queue_position(t.id) for t in (first, second, third)] == [1, 2, 3]

    tickets.claim(first.id, dana.id)
    assert [tickets.queue_position(t.id) for t in (first, second, third)] == [None, 1, 2]
    assert [t.id for t in tickets.list_tickets(["waiting"])] == [second.id, third.id]
    assert [t.id for t in tickets.list_tickets(["waiting", "assigned"])] == [first.id, second.id, third.id]
    assert [t.id for t in tickets.list_tickets()] == [third.id, second.id, first.id]  # history: newest first
    assert [t.id for t in tickets.list_tickets(["waiting"], limit=1)] == [second.id]
    assert tickets.list_tickets(["assigned"])[0].assigned_agent_name == "Dana"
    assert tickets.list_tickets(["closed"]) == []
    with pytest.raises(ValueError):
        tickets.list_tickets(["pending"])
    with pytest.raises(TicketNotFound):
        tickets.queue_position(9999)


def test_same_second_tickets_queue_by_id(tickets):
    ids = [open_ticket(tickets, f"same-{i}").id for i in range(3)]  # the fake clock doesn't move
    assert [tickets.queue_position(i) for i in ids] == [1, 2, 3]


def test_two_agents_claiming_at_once_exactly_one_wins(tickets, agents):
    dana, eli = agents
    for round_ in range(5):
        ticket = open_ticket(tickets, f"claim-{round_}")
        results = run_together(2, lambda i, ticket=ticket: tickets.claim(ticket.id, (dana, eli)[i].id))
        wins = [r for r in results if not isinstance(r, Exception)]
        conflicts = [r for r in results if isinstance(r, TicketConflict)]
        assert len(wins) == 1 and len(conflicts) == 1, results
        assert "already claimed" in str(conflicts[0])
        winner = wins[0]
        assert winner.status == "assigned" and winner.assigned_agent_id in (dana.id, eli.id)
        assert tickets.get_ticket(ticket.id).assigned_agent_id == winner.assigned_agent_id
    assigned = [e for e in tickets.events_after(0) if e.type == "ticket_assigned"]
    assert len(assigned) == 5


def test_claim_errors(tickets, agent_store, agents, clock):
    dana, eli = agents
    ticket = open_ticket(tickets)
    with pytest.raises(TicketNotFound):
        tickets.claim(9999, dana.id)
    with pytest.raises(HandoffError):
        tickets.claim(ticket.id, 9999)  # no such agent
    agent_store.set_active("eli", False)
    with pytest.raises(HandoffError):
        tickets.claim(ticket.id, eli.id)
    assert tickets.get_ticket(ticket.id).status == "waiting"

    clock.advance(seconds=42)
    claimed = tickets.claim(ticket.id, dana.id)
    assert claimed.assigned_at == clock.now and claimed.assigned_agent_name == "Dana"
    with pytest.raises(TicketConflict, match="Dana"):
        tickets.claim(ticket.id, dana.id)
    tickets.close(ticket.id, "agent", "done", agent_id=dana.id)
    with pytest.raises(TicketConflict):
        tickets.claim(ticket.id, dana.id)


def test_messages_keep_their_order_and_after_id_pages(tickets, agents, clock):
    dana, _ = agents
    ticket = open_ticket(tickets)
    tickets.claim(ticket.id, dana.id)
    first = tickets.add_message(ticket.id, "user", "still failing")
    clock.advance(seconds=1)
    second = tickets.add_message(ticket.id, "agent", "Let me look.", agent_id=dana.id)
    clock.advance(seconds=1)
    third = tickets.add_message(ticket.id, "user", "thanks")
    assert [m.text for m in tickets.messages(ticket.id)] == ["still failing", "Let me look.", "thanks"]
    assert first.id < second.id < third.id
    assert [m.id for m in tickets.messages(ticket.id, after_id=first.id)] == [second.id, third.id]
    assert tickets.messages(ticket.id, after_id=third.id) == []
    assert second.sender == "agent" and second.agent_name == "Dana" and second.conversation_id == ticket.conversation_id
    assert json.loads(json.dumps(second.to_dict()))["created_at"] == "2025-01-06T09:00:01+00:00"

    for bad in ("", "   ", "x" * 10_001):
        with pytest.raises(ValueError):
            tickets.add_message(ticket.id, "user", bad)
    assert tickets.add_message(ticket.id, "user", "x" * 10_000).text == "x" * 10_000
    with pytest.raises(ValueError):
        tickets.add_message(ticket.id, "robot", "hi")
    with pytest.raises(TicketNotFound):
        tickets.add_message(9999, "user", "hi")
    with pytest.raises(TicketNotFound):
        tickets.messages(9999)
    assert len(tickets.messages(ticket.id)) == 4


def test_an_agent_cannot_post_to_a_ticket_they_do_not_hold(tickets, agents):
    dana, eli = agents
    ticket = open_ticket(tickets)
    with pytest.raises(TicketConflict):
        tickets.add_message(ticket.id, "agent", "hi", agent_id=dana.id)  # still waiting
    tickets.claim(ticket.id, dana.id)
    with pytest.raises(TicketConflict):
        tickets.add_message(ticket.id, "agent", "hi", agent_id=eli.id)
    with pytest.raises(ValueError):
        tickets.add_message(ticket.id, "agent", "hi")  # no agent_id
    tickets.add_message(ticket.id, "agent", "hi", agent_id=dana.id)
    tickets.return_to_bot(ticket.id, dana.id)
    with pytest.raises(TicketConflict):
        tickets.add_message(ticket.id, "agent", "one more thing", agent_id=dana.id)
    assert [m.text for m in tickets.messages(ticket.id)] == ["hi"]


def test_hand_back_and_close_transitions(tickets, agents, clock):
    dana, eli = agents
    ticket = open_ticket(tickets, "conv-t")
    with pytest.raises(TicketConflict):
        tickets.return_to_bot(ticket.id, dana.id)  # waiting, not assigned
    tickets.claim(ticket.id, dana.id)
    with pytest.raises(TicketConflict):
        tickets.return_to_bot(ticket.id, eli.id)  # not eli's
    clock.advance(minutes=3)
    returned = tickets.return_to_bot(ticket.id, dana.id, "  outage explained ")
    assert returned.status == "returned_to_bot" and returned.returned_at == clock.now
    assert returned.resolution_note == "outage explained" and not returned.is_open
    for action in (
        lambda: tickets.return_to_bot(ticket.id, dana.id),
        lambda: tickets.close(ticket.id, "agent", "x", agent_id=dana.id),
        lambda: tickets.claim(ticket.id, dana.id),
    ):
        with pytest.raises(TicketConflict):
            action()
    assert tickets.open_ticket_for("conv-t") is None

    by_user = open_ticket(tickets, "conv-u")
    closed = tickets.close(by_user.id, "user", "The user said it is fixed.")
    assert (closed.status, closed.closed_by, closed.resolution_note) == ("closed", "user", "The user said it is fixed.")
    assert closed.closed_at == clock.now
    with pytest.raises(TicketConflict, match="already closed"):
        tickets.close(by_user.id, "user")

    by_agent = open_ticket(tickets, "conv-a")
    tickets.claim(by_agent.id, eli.id)
    assert tickets.close(by_agent.id, "agent", "Re-enabled data sharing", agent_id=eli.id).closed_by == "agent"

    by_system = open_ticket(tickets, "conv-s")
    assert tickets.close(by_system.id, "system").status == "closed"

    with pytest.raises(ValueError):
        tickets.close(open_ticket(tickets).id, "manager")
    with pytest.raises(ValueError):
        tickets.close(open_ticket(tickets).id, "agent", "no agent id")
    with pytest.raises(TicketNotFound):
        tickets.close(9999, "user")
    assert tickets.stats()["resolved_by"] == {"bot": 0, "human": 1, "user_cancelled": 1}


def test_a_new_escalation_after_close_or_hand_back_opens_a_new_ticket(tickets, agents):
    dana, _ = agents
    first = open_ticket(tickets, "conv-r")
    tickets.close(first.id, "user")
    second = open_ticket(tickets, "conv-r")
    assert second.id != first.id and second.status == "waiting"
    tickets.claim(second.id, dana.id)
    assert open_ticket(tickets, "conv-r").id == second.id  # still open while assigned
    tickets.return_to_bot(second.id, dana.id)
    third = open_ticket(tickets, "conv-r")
    assert third.id not in (first.id, second.id)
    assert tickets.open_ticket_for("conv-r").id == third.id
    assert tickets.get_ticket(first.id).status == "closed"


def test_the_events_cursor_sees_every_change_in_order(tickets, agents):
    dana, _ = agents
    assert tickets.latest_event_id() == 0 and tickets.events_after(0) == []
    ticket = open_ticket(tickets, "conv-e")
    tickets.claim(ticket.id, dana.id)
    tickets.add_message(ticket.id, "user", "hello?")
    tickets.add_message(ticket.id, "agent", "hi, Dana here", agent_id=dana.id)
    tickets.return_to_bot(ticket.id, dana.id, "fixed")
    again = open_ticket(tickets, "conv-e")
    tickets.close(again.id, "user")
    tickets.record_outcome("conv-other", "bot")

    events = tickets.events_after(0)
    assert [e.type for e in events] == [
        "ticket_created",
        "ticket_assigned",
        "message_created",
        "message_created",
        "ticket_returned",
        "ticket_created",
        "ticket_closed",
        "outcome_recorded",
        "outcome_recorded",
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert tickets.latest_event_id() == ids[-1]
    assert tickets.events_after(ids[-1]) == []
    assert events[1].data["agent_name"] == "Dana" and events[1].actor == f"agent:{dana.id}"
    assert events[3].data["text"] == "hi, Dana here"
    assert events[6].data["closed_by"] == "user" and events[7].data["resolved_by"] == "user_cancelled"
    assert events[8].conversation_id == "conv-other" and events[8].ticket_id is None
    payload = json.loads(json.dumps(events[2].to_dict()))
    assert payload["ticket_id"] == ticket.id and payload["type"] == "message_created"

    paged, cursor = [], 0
    while True:
        page = tickets.events_after(cursor, limit=2)
        if not page:
            break
        paged += page
        cursor = page[-1].id
    assert [e.id for e in paged] == ids


def test_the_events_cursor_misses_nothing_while_many_write_at_once(tickets, agents):
    """A reader following the cursor during concurrent writes ends up with every event, each once."""
    dana, _ = agents
    opened = [open_ticket(tickets, f"conv-w{i}") for i in range(4)]
    start = tickets.latest_event_id()
    seen: List[int] = []
    done = threading.Event()

    def follow() -> None:
        cursor = start
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            finished = done.is_set()
            for event in tickets.events_after(cursor):
                seen.append(event.id)
                cursor = event.id
            if finished:
                return
            time.sleep(0.002)  # the console polls every 0.5 s; a busy loop would only starve the writers

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        results = run_together(4, lambda i: [tickets.add_message(opened[i].id, "user", f"m{n}") for n in range(20)])
    finally:
        done.set()
        reader.join(timeout=60)
    assert not [r for r in results if isinstance(r, Exception)], results
    everything = [e.id for e in tickets.events_after(start, limit=1000)]
    assert len(everything) == 80
    assert seen == everything


def test_stats_median_wait_with_a_fake_clock(tickets, agents, clock):
    dana, eli = agents
    assert tickets.stats() == {
        "open": 0,
        "waiting": 0,
        "assigned": 0,
        "median_wait_seconds": None,
        "resolved_by": {"bot": 0, "human": 0, "user_cancelled": 0},
        "tickets_total": 0,
    }
    waits = [30, 600, 90]
    for i, wait in enumerate(waits):
        ticket = open_ticket(tickets, f"conv-m{i}")
        clock.advance(seconds=wait)
        tickets.claim(ticket.id, dana.id)
    assert tickets.stats()["median_wait_seconds"] == 90.0

    returned = tickets.list_tickets(["assigned"])[0]
    tickets.return_to_bot(returned.id, dana.id)  # still counts: it was assigned once
    open_ticket(tickets, "conv-waiting")  # never assigned: doesn't count
    clock.advance(seconds=3600)
    late = open_ticket(tickets, "conv-late")
    clock.advance(seconds=120)
    tickets.claim(late.id, eli.id)

    stats = tickets.stats()
    assert stats["median_wait_seconds"] == pytest.approx((90 + 120) / 2)
    assert (stats["open"], stats["waiting"], stats["assigned"], stats["tickets_total"]) == (4, 1, 3, 5)


def test_outcomes_are_counted(db, tickets, agents):
    dana, _ = agents
    tickets.record_outcome("conv-b1", "bot")
    tickets.record_outcome("conv-b2", "bot")
    tickets.record_outcome("conv-h", "human")
    t = open_ticket(tickets)
    tickets.claim(t.id, dana.id)
    tickets.close(t.id, "agent", "done", agent_id=dana.id)
    tickets.close(open_ticket(tickets).id, "user")
    tickets.close(open_ticket(tickets).id, "system")  # no outcome
    assert tickets.stats()["resolved_by"] == {"bot": 2, "human": 2, "user_cancelled": 1}
    with pytest.raises(ValueError):
        tickets.record_outcome("conv-x", "robot")
    with pytest.raises(ValueError):
        tickets.record_outcome("", "bot")
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT conversation_id, resolved_by, ticket_id FROM outcomes ORDER BY id").all()
    assert [tuple(r) for r in rows][:3] == [("conv-b1", "bot", None), ("conv-b2", "bot", None), ("conv-h", "human", None)]
    assert rows[3][2] == t.id


# --------------------------------------------------------------------------- passwords
def test_password_hashing():
    stored = passwords.hash_password(PASSWORD)
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    import base64

    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert PASSWORD not in stored
    assert passwords.verify_password(PASSWORD, stored)
    assert not passwords.verify_password(PASSWORD + "!", stored)
    assert not passwords.verify_password("", stored)
    other = passwords.hash_password(PASSWORD)
    assert other != stored and other.split("$")[4] != salt  # fresh salt every time
    assert passwords.verify_password(PASSWORD, other)
    expected = hashlib.scrypt(PASSWORD.encode(), salt=base64.b64decode(salt), n=2**14, r=8, p=1, dklen=32)
    assert base64.b64decode(key) == expected
    for bad in ("", "short", "7chars!"):
        with pytest.raises(ValueError):
            passwords.hash_password(bad)
    assert passwords.hash_password("8 chars!")
    for malformed in ("", "plain", "scrypt$16384$8$1$!!$!!", "bcrypt$16384$8$1$AAAA$AAAA", "scrypt$3$8$1$AAAA$AAAA"):
        assert not passwords.verify_password(PASSWORD, malformed)


def test_password_verification_compares_in_constant_time(monkeypatch):
    stored = passwords.hash_password(PASSWORD)
    calls = []
    real = passwords.hmac.compare_digest
    monkeypatch.setattr(passwords.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert passwords.verify_password(PASSWORD, stored)
    assert calls


# --------------------------------------------------------------------------- agents and sessions
def test_agents_and_authentication(db, agent_store, monkeypatch):
    agent = agent_store.create_agent("  Dana.S ", PASSWORD, "Dana Smith")
    assert agent.username == "dana.s" and agent.display_name == "Dana Smith" and agent.is_active
    assert agent_store.create_agent("eli", PASSWORD).display_name == "eli"
    with pytest.raises(HandoffError, match="already exists"):
        agent_store.create_agent("DANA.S", PASSWORD)
    with pytest.raises(ValueError):
        agent_store.create_agent("bob", "short")
    with pytest.raises(ValueError):
        agent_store.create_agent("has space", PASSWORD)
    assert [a.username for a in agent_store.list_agents()] == ["dana.s", "eli"]
    assert "password" not in json.dumps(agent.to_dict())
    assert PASSWORD not in table_dump(db)

    assert agent_store.authenticate("Dana.S", PASSWORD) == agent_store.get_agent(agent.id)
    assert agent_store.authenticate("dana.s", "wrong password") is None
    assert agent_store.authenticate("dana.s", "") is None

    verified = []
    real_verify = agents_module.verify_password
    monkeypatch.setattr(agents_module, "verify_password", lambda pw, h: verified.append(h) or real_verify(pw, h))
    assert agent_store.authenticate("nobody", PASSWORD) is None
    assert agent_store.authenticate("not a valid name", PASSWORD) is None
    assert len(verified) == 2  # a dummy verification for unknown usernames too

    agent_store.set_active("dana.s", False)
    assert agent_store.authenticate("dana.s", PASSWORD) is None
    agent_store.set_active("dana.s", True)
    assert agent_store.authenticate("dana.s", PASSWORD) is not None

    agent_store.set_password("dana.s", "a brand new password")
    assert agent_store.authenticate("dana.s", PASSWORD) is None
    assert agent_store.authenticate("dana.s", "a brand new password").id == agent.id
    with pytest.raises(HandoffError, match="no agent"):
        agent_store.set_password("nobody", "a brand new password")
    with pytest.raises(ValueError):
        agent_store.set_password("dana.s", "short")


def test_sessions(db, agent_store, agents, clock):
    dana, eli = agents
    token = agent_store.create_session(dana.id, ttl_seconds=3600)
    assert len(token) >= 40
    seen = agent_store.agent_for_session(token)
    assert seen.id == dana.id and seen.last_seen_at == clock.now

    # only the SHA-256 of the token is stored
    dump = table_dump(db)
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump
    if db.dialect == "sqlite":
        database = Path(db.url.database)
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert token.encode() not in path.read_bytes()

    # last_seen_at moves at most once a minute
    first_seen = clock.now
    clock.advance(seconds=30)
    assert agent_store.agent_for_session(token).last_seen_at == first_seen
    assert agent_store.get_agent(dana.id).last_seen_at == first_seen
    clock.advance(seconds=31)
    assert agent_store.agent_for_session(token).last_seen_at == clock.now
    assert agent_store.get_agent(dana.id).last_seen_at == clock.now

    # expiry
    clock.advance(seconds=3600 - 61 - 1)
    assert agent_store.agent_for_session(token) is not None
    clock.advance(seconds=1)
    assert agent_store.agent_for_session(token) is None

    # revoke
    other = agent_store.create_session(eli.id)
    assert agent_store.agent_for_session(other).id == eli.id
    agent_store.revoke_session(other)
    assert agent_store.agent_for_session(other) is None
    agent_store.revoke_session(other)  # twice is fine

    # unknown, inactive, password change
    assert agent_store.agent_for_session("not-a-token") is None
    assert agent_store.agent_for_session("") is None
    third = agent_store.create_session(eli.id)
    agent_store.set_active("eli", False)
    assert agent_store.agent_for_session(third) is None
    with pytest.raises(HandoffError):
        agent_store.create_session(eli.id)
    fourth = agent_store.create_session(dana.id)
    agent_store.set_password("dana", "a brand new password")
    assert agent_store.agent_for_session(fourth) is None
    with pytest.raises(ValueError):
        agent_store.create_session(dana.id, ttl_seconds=0)


# --------------------------------------------------------------------------- CLI
def run_cli(args: List[str], cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    full_env.pop("HANDOFF_DB_URL", None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot.handoff.cli", *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_creates_and_lists_agents(tmp_path):
    work = tmp_path / "elsewhere"  # not the repository: migrations must be found from any cwd
    work.mkdir()
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    before = run_cli(["--db-url", url, "list-agents"], work, {})
    assert before.returncode == 1 and "migrate" in before.stderr

    assert run_cli(["--db-url", url, "migrate"], work, {}).returncode == 0
    created = run_cli(
        ["--db-url", url, "create-agent", "Dana", "--display-name", "Dana Smith"], work, {"AGENT_PASSWORD": PASSWORD}
    )
    assert created.returncode == 0, created.stderr
    assert "dana" in created.stdout and PASSWORD not in created.stdout + created.stderr

    # HANDOFF_DB_URL works as well as --db-url
    listed = run_cli(["list-agents"], work, {"HANDOFF_DB_URL": url})
    assert listed.returncode == 0, listed.stderr
    assert "dana" in listed.stdout and "Dana Smith" in listed.stdout

    duplicate = run_cli(["--db-url", url, "create-agent", "dana"], work, {"AGENT_PASSWORD": PASSWORD})
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    no_password = run_cli(["--db-url", url, "create-agent", "eli"], work, {})
    assert no_password.returncode == 1 and "AGENT_PASSWORD" in no_password.stderr
    too_short = run_cli(["--db-url", url, "create-agent", "eli"], work, {"AGENT_PASSWORD": "short"})
    assert too_short.returncode == 1 and "too short" in too_short.stderr

    changed = run_cli(["--db-url", url, "set-password", "dana"], work, {"AGENT_PASSWORD": "another good one"})
    assert changed.returncode == 0, changed.stderr
    stats = run_cli(["--db-url", url, "stats"], work, {})
    assert stats.returncode == 0 and json.loads(stats.stdout)["tickets_total"] == 0

    db = Database(url)
    try:
        agent_store = AgentStore(db)
        agent = agent_store.authenticate("dana", "another good one")
        assert agent is not None and agent.display_name == "Dana Smith"
        assert agent_store.authenticate("dana", PASSWORD) is None
        assert [a.username for a in agent_store.list_agents()] == ["dana"]
    finally:
        db.dispose()


def test_conversation_messages_collects_agent_and_system_lines_across_tickets(tickets, agent_store):
    agent = agent_store.create_agent("poller", "long enough pw", "Poll")
    first = tickets.open_ticket("conv-poll", "rest", {"diagnosis": "bank_unavailable"}, [])
    tickets.claim(first.id, agent.id)
    tickets.add_message(first.id, "user", "hello")
    a1 = tickets.add_message(first.id, "agent", "hi there", agent.id)
    tickets.close(first.id, "agent", "done", agent.id)
    second = tickets.open_ticket("conv-poll", "rest", {}, [])
    tickets.claim(second.id, agent.id)
    a2 = tickets.add_message(second.id, "agent", "back again", agent.id)
    tickets.open_ticket("conv-other", "rest", {}, [])
    got = tickets.conversation_messages("conv-poll")
    assert [m.text for m in got] == ["hi there", "back again"]
    assert [m.text for m in tickets.conversation_messages("conv-poll", after_id=a1.id)] == ["back again"]
    assert tickets.conversation_messages("conv-poll", after_id=a2.id) == []
    assert tickets.conversation_messages("conv-other") == []
