"""Whole conversations over REST as customers talk: free text where buttons were offered, banks the
directory lacks, things that are not the bank asked for, a long paste, relapses, topic switches and a
return the next day. Real Rasa server and action server, local fake bank sites."""

from __future__ import annotations

import uuid

import httpx


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def payloads(replies):
    return [b["payload"] for r in replies for b in r.get("buttons", [])]


def questions(replies) -> int:
    """Questions in one bot turn: messages with buttons, or ending with a question mark."""
    return sum(1 for r in replies if r.get("buttons") or (r.get("text") or "").rstrip().endswith("?"))


def new_sender() -> str:
    return f"talk-{uuid.uuid4().hex[:10]}"


def test_chrome_at_did_the_feed_update_is_understood_and_never_loops(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    assert "Did the feed update?" in texts(rasa_stack.send(s, "bank site is fine, quickbooks still fails"))
    replies = rasa_stack.send(s, "chrome")
    assert "Noted: you use Chrome" in texts(replies)
    assert "press the Update button" in texts(replies)  # the question again, in other words
    replies = rasa_stack.send(s, "chrome")
    assert {"/skip_step", "/ask_human"} <= set(payloads(replies))  # the second time: skip, or a person
    turns = [replies]
    for _ in range(6):
        turns.append(rasa_stack.send(s, "chrome"))
    said = [texts(r) for r in turns]
    assert all(not (a == b == c) for a, b, c in zip(said, said[1:], said[2:]))
    # not one message either: "Noted: you use Chrome" was said once, not every turn
    messages = [{m.get("text") for m in r} for r in turns]
    assert all(not (a & b & c) for a, b, c in zip(messages, messages[1:], messages[2:]))
    assert rasa_stack.tracker(s)["slots"]["current_step"] == "refresh"  # nothing skipped behind their back
    replies = rasa_stack.send(s, "skip")
    assert "skipping refreshing the connection" in texts(replies) and "Can you sign in" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["browser"] == "chrome" and slots["step_outcomes"]["refresh"] == "skipped_by_customer"


def test_typed_answers_dont_know_and_what_do_you_mean(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "quickbooks cant connect to wells fargo error 102")
    rasa_stack.send(s, "the bank site works, quickbooks still fails")
    replies = rasa_stack.send(s, "what do you mean?")
    assert "press the Update button" in texts(replies)
    replies = rasa_stack.send(s, "i dont know")
    assert "Here's how to tell" in texts(replies)
    replies = rasa_stack.send(s, "nope still failing")
    assert "Can you sign in" in texts(replies)
    rasa_stack.send(s, "yes")
    replies = rasa_stack.send(s, "not sure")  # "No / not sure" to the user ID question
    assert "changed that bank password" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["credential_answers"]["same_user_id"] is False


def test_a_bank_not_in_the_directory_is_taken_as_given(rasa_stack, fake_banks):
    s = new_sender()
    assert "Which bank" in texts(rasa_stack.send(s, "bank feed error 102"))
    before = fake_banks.total_hits()
    replies = rasa_stack.send(s, "Comerica")
    assert "Comerica isn't in my bank list yet" in texts(replies) and "your bank's own website" in texts(replies)
    assert "I don't have" not in texts(replies)
    assert questions(replies) == 1
    assert fake_banks.total_hits() == before  # no site check without an address
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["bank"] == "Comerica" and slots["current_step"] == "site_check"
    assert "refresh the connection" in texts(rasa_stack.send(s, "/deny"))


def test_banana_is_not_an_error_either(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102")
    replies = rasa_stack.send(s, "banana")
    assert "banana isn't in my bank list yet" in texts(replies)  # taken as the customer gave it, and counted
    assert "refresh the connection" in texts(rasa_stack.send(s, "/deny"))


def test_a_button_payload_at_the_bank_question_is_never_a_bank_name(rasa_stack):
    s = new_sender()
    first = texts(rasa_stack.send(s, "error 102"))
    replies = rasa_stack.send(s, "/deny")
    assert "/deny" not in texts(replies) and "Which bank" in texts(replies)
    assert texts(replies) != first
    assert rasa_stack.tracker(s)["slots"]["bank"] is None
    replies = rasa_stack.send(s, "/deny")
    assert {"/skip_step", "/ask_human"} <= set(payloads(replies))
    replies = rasa_stack.send(s, "/skip_step")
    assert "skip the automatic check" in texts(replies) and "What do you find?" in texts(replies)


def test_a_question_while_the_bank_is_asked_is_answered_as_what_it_is(rasa_stack, fake_banks):
    s = new_sender()
    rasa_stack.send(s, "error 102")
    replies = rasa_stack.send(s, "what's the weather like today?")
    assert "bank list" not in texts(replies) and "weather" not in texts(replies)
    assert "Which bank" in texts(replies)  # asked again, once
    assert questions(replies) == 1
    replies = rasa_stack.send(s, "how do I record a refund")
    assert "only cover QuickBooks Online bank feeds" in texts(replies)
    assert "the bank's name" in replies[-1]["text"] and "/skip_step" in payloads(replies)  # asked again, differently
    replies = rasa_stack.send(s, "chase")
    assert "answering normally" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["diagnosis"] == "bank_unavailable"


def test_a_2500_character_paste_is_read_whole(rasa_stack):
    s = new_sender()
    log = " ".join(f"2026-11-{d:02d} update failed, retried, no new transactions." for d in range(1, 31) for _ in range(2))
    paste = ("Error 102: We're sorry, this bank's website is currently unavailable. " + log)[:2400]
    paste += " " + "x" * (2460 - len(paste)) + " this is for our Chase business checking account"
    assert len(paste) > 2_500 - 40 and paste.index("Chase") > 2_000
    replies = rasa_stack.send(s, paste)
    assert "Error 102" in texts(replies) and "Chase" in texts(replies)  # the bank named after 2,000 characters
    tracker = rasa_stack.tracker(s)
    assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == [paste]  # nothing cut, nothing lost
    assert tracker["slots"]["bank"] == "Chase"


def test_it_broke_again_after_fixed_goes_on_from_where_it_was(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    rasa_stack.send(s, "/deny")
    assert "glad it's working" in texts(rasa_stack.send(s, "that fixed it, transactions are coming in")).lower()
    replies = rasa_stack.send(s, "it broke again")
    assert "Sorry it's failing again" in texts(replies) and "Can you sign in" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["resolved"] is False and slots["steps_tried"] == ["site_check", "refresh"]
    assert slots["step_outcomes"]["refresh"] == "fixed_then_failed_again"


def test_topic_switch_to_another_bank_and_back(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    rasa_stack.send(s, "/deny")  # refresh pending
    replies = rasa_stack.send(s, "also my other bank shows 103")
    assert "switching to the sign-in mismatch (Error 103). I've kept our progress on Error 102 with Chase" in texts(replies)
    replies = rasa_stack.send(s, "ok back to the 102 problem")
    assert "Back to Error 102 with Chase" in texts(replies) and "Did the feed update?" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["bank"] == "Chase" and slots["steps_tried"] == ["site_check"] and slots["current_step"] == "refresh"


def test_a_customer_returning_the_next_day(rasa_stack):
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    rasa_stack.send(s, "/deny")
    # the session expires overnight; the next message starts a new one (slots carried over)
    r = httpx.post(
        f"{rasa_stack.url}/conversations/{rasa_stack.conversation_id(s)}/execute",
        json={"name": "action_session_start"},
        headers={"Authorization": f"Bearer {rasa_stack.token}"},
        timeout=30,
    )
    r.raise_for_status()
    assert r.json()["messages"] == []  # nothing before the customer speaks
    replies = rasa_stack.send(s, "hi again")
    assert "Welcome back" in texts(replies) and "Is it the same problem?" in texts(replies)
    assert questions(replies) == 1
    replies = rasa_stack.send(s, "yes")
    assert "Did the feed update?" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["steps_tried"] == ["site_check"]


def test_nothing_but_secrets_at_a_step_question_asks_it_again(rasa_stack):
    """Seen: "my password is ... and card ..." at "Did the feed update?" moved on to the next step.
    It answers nothing: the bot warns, asks the same question again and the step stays."""
    s = new_sender()
    rasa_stack.send(s, "error 102 with chase")
    assert "Did the feed update?" in texts(rasa_stack.send(s, "bank site is fine, quickbooks still fails"))
    replies = rasa_stack.send(s, "my password is Hunter2!x and card 4111 1111 1111 1111")
    said = texts(replies)
    assert "I've removed what looked like a password and a card number" in said
    assert "press the Update button" in said and questions(replies) == 1
    assert "Hunter2" not in said and "4111" not in said
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["current_step"] == "refresh" and "refresh" not in (slots.get("step_outcomes") or {})
    assert "Can you sign in" in texts(rasa_stack.send(s, "no, still failing"))  # a real answer moves on
