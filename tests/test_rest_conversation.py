"""The product end to end over its REST channel: real Rasa server, real action server, local bank sites."""

from __future__ import annotations

import sqlite3
import time
import uuid


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def payloads(replies):
    return [b["payload"] for r in replies for b in r.get("buttons", [])]


def new_sender() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def test_error_102_full_path_to_escalation(rasa_stack, fake_banks, handoff_db):
    s = new_sender()
    replies = rasa_stack.send(s, "getting erorr 102 on my chase account")
    assert "answering normally" in texts(replies)
    assert "/bank_site_problem" in payloads(replies)
    assert fake_banks.hits("/chase/healthy") >= 1
    rasa_stack.send(s, "/deny")  # bank site fine -> refresh
    replies = rasa_stack.send(s, "/deny")  # refresh failed -> credential check, never a password
    assert "without you telling me any password" in texts(replies)
    for _ in range(4):
        rasa_stack.send(s, "/affirm")
    replies = rasa_stack.send(s, "/deny")
    assert "Edit sign-in info" in texts(replies)
    replies = rasa_stack.send(s, "/deny")
    assert "Which browser" in texts(replies)
    replies = rasa_stack.send(s, '/inform{"browser":"safari"}')
    assert "Safari" in texts(replies)
    assert "private window" in texts(rasa_stack.send(s, "/deny"))
    assert "350 KB" in texts(rasa_stack.send(s, "/deny"))
    replies = rasa_stack.send(s, "/deny")
    assert "give the bank a day" in texts(replies)
    assert "/deny" not in payloads(replies)  # "waited, still failing" can't be said a second later
    assert "too early to tell" in texts(rasa_stack.send(s, "still failing"))
    replies = rasa_stack.send(s, "/remind_me")
    assert "message you here tomorrow" in texts(replies)
    # the reminder comes on the customer's channel (REST: collected by polling)
    deadline = time.monotonic() + 20
    while not rasa_stack.messages(s)["reminders"] and time.monotonic() < deadline:
        time.sleep(0.5)
    reminders = rasa_stack.messages(s)["reminders"]
    assert len(reminders) == 1 and "Is your bank feed updating now?" in reminders[0]["text"]
    assert [b["payload"] for b in reminders[0]["buttons"]] == ["/fixed_it", "/deny"]
    replies = rasa_stack.send(s, "/deny")
    assert "specialist" in texts(replies)
    tracker = rasa_stack.tracker(s)
    slots = tracker["slots"]
    statuses = [e["value"] for e in tracker["events"] if e["event"] == "slot" and e["name"] == "handoff_status"]
    assert statuses == ["requested", "waiting"]  # summary recorded, then queued for a specialist
    assert any(e["event"] == "pause" for e in tracker["events"])
    assert slots["steps_tried"] == [
        "site_check",
        "refresh",
        "credential_check",
        "clear_cache",
        "private_window",
        "manual_upload",
        "wait_a_day",
    ]
    summary = slots["escalation_summary"]
    assert summary["bank"] == "Chase" and summary["error_code"] == "102" and summary["diagnosis"] == "bank_unavailable"
    assert summary["check_results"]["Chase"]["status"] == "up"
    assert summary["reason"] == "still_failing_after_a_day" and summary["wait_choice"] == "reminder"
    assert summary["steps_walked"] == slots["steps_tried"] and summary["steps_skipped"] == {}
    assert summary["credential_findings"][0] == "can sign in on the bank's site"
    ticket = handoff_db.tickets.open_ticket_for(rasa_stack.conversation_id(s))
    said = [line["text"] for line in ticket.transcript if line["sender"] == "user"]
    assert "/deny" not in said and "Bank site works, QuickBooks still fails" in said and "Check back tomorrow" in said


def test_unknown_bank_is_asked_for_and_a_maintenance_page_is_reported(rasa_stack):
    s = new_sender()
    replies = rasa_stack.send(s, "bank feed error 102")
    assert "Which bank" in texts(replies)
    replies = rasa_stack.send(s, "barclays")
    assert "maintenance" in texts(replies)
    assert "try again after 3600" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["bank"] == "Barclays" and slots["check_results"]["Barclays"]["status"] == "maintenance"


def test_an_unlisted_bank_by_url(rasa_stack, fake_banks):
    s = new_sender()
    rasa_stack.send(s, "error 102")
    replies = rasa_stack.send(s, "First Farmers Bank of Smalltown")
    assert "First Farmers Bank of Smalltown isn't in my bank list yet" in texts(replies)  # taken as given
    replies = rasa_stack.send(s, fake_banks.url("/first-farmers/error500"))
    assert "isn't working from here" in texts(replies) and "HTTP 500" in texts(replies)


def test_a_hanging_bank_site_does_not_hold_the_conversation(rasa_stack):
    import time

    s = new_sender()
    started = time.monotonic()
    replies = rasa_stack.send(s, "error 102 with capital one")
    assert time.monotonic() - started < 10
    assert "couldn't get a clear answer" in texts(replies)


def test_it_worked_and_prevention_tips(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "quickbooks cant connect to wells fargo error 102")
    rasa_stack.send(s, "/deny")
    replies = rasa_stack.send(s, "that fixed it, transactions are coming in again")
    assert "glad it's working" in texts(replies).lower()
    assert "refreshing the connection" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["resolved"] is True


def test_insisting_on_a_person(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102 bank of america")
    replies = rasa_stack.send(s, "i want to talk to a real person")
    assert "haven't tried them yet" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["handoff_status"] is None
    replies = rasa_stack.send(s, "/ask_human")
    assert "bringing in a human specialist" in texts(replies)
    assert "in the queue" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["handoff_status"] == "waiting"


def test_out_of_scope_gets_a_polite_answer(rasa_stack):
    replies = rasa_stack.send(new_sender(), "how do i send an invoice to a customer")
    assert "only cover QuickBooks Online bank feeds" in texts(replies)


def test_pasted_password_is_masked_in_the_tracker_store(rasa_stack):
    s = new_sender()
    replies = rasa_stack.send(s, "error 103 for chase. my password is Hunter2Secret! btw")
    assert "I've removed what looked like a password" in texts(replies)
    events = rasa_stack.tracker(s)["events"]
    user_texts = [e["text"] for e in events if e["event"] == "user"]
    assert user_texts == ["error 103 for chase. my password is [password removed] btw"]
    with sqlite3.connect(rasa_stack.dir / "tracker.db") as db:
        stored = " ".join(row[0] for row in db.execute("select data from events"))
    assert "Hunter2Secret" not in stored
    assert "[password removed]" in stored


def test_api_needs_the_token(rasa_stack):
    import httpx

    assert httpx.get(f"{rasa_stack.url}/conversations/x/tracker", timeout=10).status_code == 401
    assert httpx.get(f"{rasa_stack.url}/conversations/x/tracker", params={"token": "wrong"}, timeout=10).status_code == 401


def test_conversation_survives_a_restart_of_both_servers(rasa_stack, action_server):
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    rasa_stack.send(s, "/deny")
    before = rasa_stack.tracker(s)["slots"]
    assert before["steps_tried"] == ["site_check"] and before["current_step"] == "refresh"

    rasa_stack.stop()
    action_server.restart()
    rasa_stack.start()

    after = rasa_stack.tracker(s)["slots"]
    assert after["steps_tried"] == ["site_check"] and after["current_step"] == "refresh"
    replies = rasa_stack.send(s, "/deny")
    assert "Can you sign in" in texts(replies)  # carries on with the credential check
    assert rasa_stack.tracker(s)["slots"]["steps_tried"] == ["site_check", "refresh"]
