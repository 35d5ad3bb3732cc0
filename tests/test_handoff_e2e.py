"""Hand-off end to end: escalate over REST, an agent claims and answers through the console API,
the bot stays silent meanwhile, then the agent hands the chat back."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx

from bot.server.handoff import RECEIVED


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def escalate(rasa_stack) -> str:
    sender = f"handoff-{uuid.uuid4().hex[:10]}"
    rasa_stack.send(sender, "error 102 with chase")
    rasa_stack.send(sender, "i want to talk to a person")
    replies = rasa_stack.send(sender, "/ask_human")
    assert "in the queue" in texts(replies)
    return sender


def agent_messages(rasa_stack, sender, after=0):
    return rasa_stack.messages(sender, after)["messages"]


def test_escalate_claim_reply_silence_and_hand_back(rasa_stack, make_agent):
    dana = make_agent("dana", "Dana")
    sender = escalate(rasa_stack)
    slots = rasa_stack.tracker(sender)["slots"]
    assert slots["handoff_status"] == "waiting"
    assert rasa_stack.tracker(sender)["latest_event_time"]

    ticket = dana.ticket_for(sender)
    assert ticket["status"] == "waiting" and ticket["bank"] == "Chase" and ticket["error_code"] == "102"
    assert ticket["queue_position"] >= 1
    detail = dana.get(f"/tickets/{ticket['id']}").json()
    assert detail["summary"]["diagnosis"] == "bank_unavailable"
    assert any("error 102 with chase" in line["text"] for line in detail["transcript"]), detail["transcript"][:3]

    # the user writes while waiting: stored for the agent; the first message gets one short
    # acknowledgement, the next ones the silence of a waiting chat
    assert texts(rasa_stack.send(sender, "hello? anyone there")) == RECEIVED
    assert rasa_stack.send(sender, "/deny") == []

    r = dana.post(f"/tickets/{ticket['id']}/claim")
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "assigned"
    assert rasa_stack.tracker(sender)["slots"]["handoff_status"] == "assigned"

    r = dana.post(f"/tickets/{ticket['id']}/messages", json={"text": "Hi, I'm Dana. Chase had an outage this morning."})
    assert r.status_code == 201
    delivered = [m["text"] for m in agent_messages(rasa_stack, sender)]
    assert any("Dana" in t and "joined" in t for t in delivered)
    assert "Hi, I'm Dana. Chase had an outage this morning." in delivered

    assert rasa_stack.send(sender, "ok what should i do") == []  # still the specialist's turn
    messages = dana.get(f"/tickets/{ticket['id']}").json()["messages"]
    user_lines = [m["text"] for m in messages if m["sender"] == "user"]
    assert user_lines == ["hello? anyone there", "No, still failing", "ok what should i do"]  # the click, not "/deny"

    # the tracker holds the whole conversation, agent lines included
    events = rasa_stack.tracker(sender)["events"]
    bot_texts = [e.get("text") for e in events if e["event"] == "bot"]
    # the customer's copy names the specialist, so any client shows who wrote it
    assert "Dana: Hi, I'm Dana. Chase had an outage this morning." in bot_texts

    r = dana.post(f"/tickets/{ticket['id']}/return", json={"note": "outage explained"})
    assert r.status_code == 200
    assert rasa_stack.tracker(sender)["slots"]["handoff_status"] == "returned_to_bot"
    replies = rasa_stack.send(sender, "/deny")
    assert replies, "the bot answers again after the hand-back"


def test_two_agents_cannot_claim_the_same_ticket(rasa_stack, make_agent):
    dana, lee = make_agent("dana", "Dana"), make_agent("lee", "Lee")
    sender = escalate(rasa_stack)
    ticket = dana.ticket_for(sender)
    results = []

    def claim(client):
        results.append(client.post(f"/tickets/{ticket['id']}/claim").status_code)

    threads = [threading.Thread(target=claim, args=(c,)) for c in (dana, lee)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [200, 409]


def test_user_saying_it_is_fixed_closes_the_ticket_and_the_bot_resumes(rasa_stack, make_agent, handoff_db):
    dana = make_agent("dana", "Dana")
    sender = escalate(rasa_stack)
    ticket = dana.ticket_for(sender)
    replies = rasa_stack.send(sender, "/fixed_it")
    assert "glad it's working" in texts(replies).lower()
    assert rasa_stack.tracker(sender)["slots"]["handoff_status"] == "closed"
    assert handoff_db.tickets.get_ticket(ticket["id"]).status == "closed"


def test_agent_closes_with_a_note(rasa_stack, make_agent):
    dana = make_agent("dana", "Dana")
    sender = escalate(rasa_stack)
    ticket = dana.ticket_for(sender)
    dana.post(f"/tickets/{ticket['id']}/claim")
    assert dana.post(f"/tickets/{ticket['id']}/close", json={"note": ""}).status_code == 400
    r = dana.post(f"/tickets/{ticket['id']}/close", json={"note": "Bank re-enabled data sharing"})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "closed"
    assert rasa_stack.tracker(sender)["slots"]["handoff_status"] == "closed"
    assert any("closed this conversation" in m["text"] for m in agent_messages(rasa_stack, sender))
    stats = dana.get("/stats").json()
    assert stats["resolved_by"]["human"] >= 1


def test_live_updates_reach_the_agent(rasa_stack, make_agent):
    dana = make_agent("dana", "Dana")
    sender = escalate(rasa_stack)
    ticket = dana.ticket_for(sender)
    seen = []

    def listen():
        with dana.http.stream("GET", "/events", timeout=20) as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "message_created":
                    data = json.loads(line[6:])
                    seen.append(data)
                    if data.get("ticket_id") == ticket["id"]:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)
    rasa_stack.send(sender, "my bank says everything is fine on their side")
    listener.join(timeout=15)
    assert any(d.get("ticket_id") == ticket["id"] for d in seen)


def test_console_api_needs_a_signed_in_agent(rasa_stack):
    base = f"{rasa_stack.url}/agent/api"
    for method, path in [
        ("GET", "/tickets"),
        ("GET", "/tickets/1"),
        ("POST", "/tickets/1/claim"),
        ("POST", "/tickets/1/messages"),
        ("GET", "/stats"),
        ("GET", "/events"),
        ("GET", "/me"),
    ]:
        assert httpx.request(method, base + path, timeout=10).status_code == 401, path
    assert httpx.post(f"{base}/login", json={"username": "dana", "password": "nope"}, timeout=10).status_code == 401


def test_a_cookie_alone_cannot_change_anything(rasa_stack, make_agent):
    dana = make_agent("dana", "Dana")
    sender = escalate(rasa_stack)
    ticket = dana.ticket_for(sender)
    cookie = dana.http.cookies.get("agent_session")
    url = f"{rasa_stack.url}/agent/api/tickets/{ticket['id']}/claim"
    # what a cross-site page can make the browser send: the cookie, any simple header, no CSRF token
    for headers in ({}, {"X-Requested-With": "console"}, {"X-CSRF-Token": "forged"}):
        r = httpx.post(url, cookies={"agent_session": cookie}, headers=headers, timeout=10)
        assert r.status_code == 403 and "CSRF" in r.json()["error"], (headers, r.status_code)
    assert dana.ticket_for(sender)["status"] == "waiting"


def test_tickets_and_messages_survive_restarts_and_wait_for_an_agent(rasa_stack, action_server, make_agent):
    sender = escalate(rasa_stack)  # no agent is online: the ticket waits
    assert texts(rasa_stack.send(sender, "still there? my books are due friday")) == RECEIVED
    rasa_stack.stop()
    action_server.restart()
    rasa_stack.start()
    lee = make_agent("lee", "Lee")  # signs in after the restart
    ticket = lee.ticket_for(sender)
    assert ticket["status"] == "waiting"
    messages = lee.get(f"/tickets/{ticket['id']}").json()["messages"]
    assert [m["text"] for m in messages if m["sender"] == "user"] == ["still there? my books are due friday"]
    assert lee.post(f"/tickets/{ticket['id']}/claim").status_code == 200
    assert rasa_stack.send(sender, "thanks") == []  # still paused after the restart: the specialist has it
    assert rasa_stack.tracker(sender)["slots"]["handoff_status"] == "assigned"


def test_handoff_on_postgresql(product_env, stack_dir, action_server, trained_model):
    """The same hand-off, with the store in the machine's real PostgreSQL (as in production)."""
    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore
    from bot.handoff.tickets import TicketStore
    from tests.conftest import ConsoleClient, RasaStack
    from tests.pg import fresh_pg_database

    with fresh_pg_database() as url:
        db = Database(url)
        db.migrate()
        AgentStore(db).create_agent("pat", "correct horse battery", "Pat")
        env = {**product_env, "HANDOFF_DB_URL": url}
        pg_dir = stack_dir / "pg"
        pg_dir.mkdir(exist_ok=True)
        actions = type(action_server)(env, pg_dir).start()
        stack = RasaStack(env, pg_dir, actions.port).start()
        try:
            sender = escalate(stack)
            pat = ConsoleClient(stack.url, "pat", "correct horse battery")
            ticket = pat.ticket_for(sender)
            assert pat.post(f"/tickets/{ticket['id']}/claim").status_code == 200
            assert pat.post(f"/tickets/{ticket['id']}/messages", json={"text": "Pat here, on PostgreSQL"}).status_code == 201
            assert "Pat here, on PostgreSQL" in [m["text"] for m in agent_messages(stack, sender)]
            assert stack.send(sender, "great") == []
            assert pat.post(f"/tickets/{ticket['id']}/return", json={}).status_code == 200
            assert stack.send(sender, "/deny"), "the bot answers after the hand-back"
            assert TicketStore(db).get_ticket(ticket["id"]).status == "returned_to_bot"
        finally:
            stack.stop()
            actions.stop()
            db.dispose()
