"""Off-topic and adjacent questions end to end over REST (real Rasa server, real NLU, real action server):
none of them starts a bank-error flow, and a real problem report afterwards still does."""

from __future__ import annotations

import uuid

from bot.troubleshooting import diagnosis as dx


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def payloads(replies):
    return [b["payload"] for r in replies for b in r.get("buttons", [])]


def new_sender() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def started_a_flow(replies) -> bool:
    """The words every bank-error flow opens with (utter_diagnosis_*, the site check)."""
    words = (
        "That sounds like Error",
        "isn't connecting",
        "sign-in mismatch",
        "security check",
        "can't find the account",
        "has expired",
        "online-banking site",
        "Which bank",
    )
    return any(w in texts(replies) for w in words)


def test_a_tax_question_is_out_of_scope_and_a_102_report_still_works(rasa_stack, fake_banks):
    s = new_sender()
    hits = fake_banks.hits("/chase/healthy")
    replies = rasa_stack.send(s, "whats the tax rate for my quarterly estimated payments")
    assert not started_a_flow(replies)
    assert "only cover QuickBooks Online bank feeds" in texts(replies)
    assert "Intuit's help articles" in texts(replies) and "QuickBooks Community" in texts(replies)
    assert "talk to a specialist" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["diagnosis"] == dx.OUT_OF_SCOPE and slots["current_step"] is None
    assert fake_banks.hits("/chase/healthy") == hits
    # the assistant stays ready: a real Error 102 report now runs the usual flow
    replies = rasa_stack.send(s, "ok different thing, chase gives me error 102 when i update")
    assert "That sounds like Error 102" in texts(replies) and "answering normally" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["diagnosis"] == dx.BANK_UNAVAILABLE and slots["current_step"] == "site_check"


def test_a_duplicate_transactions_question_gets_the_short_answer(rasa_stack):
    s = new_sender()
    replies = rasa_stack.send(s, "i have duplicate transactions after reconnecting my bank")
    assert not started_a_flow(replies)
    assert "Exclude" in texts(replies) and "For review" in texts(replies)
    assert texts(replies).count("?") <= 1  # one question at most
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["diagnosis"] is None and slots["current_step"] is None


def test_an_ambiguous_message_gets_one_question_with_the_likeliest_options(rasa_stack):
    s = new_sender()
    # the classifier reads this as a bank error, but nothing in it is a bank-connection problem
    replies = rasa_stack.send(s, "something is wrong with my account")
    assert not started_a_flow(replies)
    assert "Which of these is it about?" in texts(replies)
    options = payloads(replies)
    assert len(options) == 3 and options[-1] == "/out_of_scope"
    assert options[0].lstrip("/") in dx.BANK_ERROR_INTENTS
    assert rasa_stack.tracker(s)["slots"]["diagnosis"] is None
    # choosing the bank-error option starts that flow
    replies = rasa_stack.send(s, options[0])
    assert started_a_flow(replies)
    assert rasa_stack.tracker(s)["slots"]["diagnosis"] == dx.REPORT_INTENTS[options[0].lstrip("/")]


def test_something_else_gets_the_out_of_scope_answer(rasa_stack):
    s = new_sender()
    replies = rasa_stack.send(s, "having trouble with quickbooks")
    assert not started_a_flow(replies)
    assert "/out_of_scope" in payloads(replies)
    replies = rasa_stack.send(s, "/out_of_scope")
    assert "only cover QuickBooks Online bank feeds" in texts(replies)


def test_a_question_naming_a_bank_without_a_problem_is_out_of_scope(rasa_stack, fake_banks):
    s = new_sender()
    hits = fake_banks.hits("/chase/healthy")
    replies = rasa_stack.send(s, "how do i enter a refund i got from chase")
    assert not started_a_flow(replies)
    assert "only cover QuickBooks Online bank feeds" in texts(replies)
    slots = rasa_stack.tracker(s)["slots"]
    assert slots["bank"] == "Chase" and slots["diagnosis"] == dx.OUT_OF_SCOPE and slots["current_step"] is None
    assert fake_banks.hits("/chase/healthy") == hits  # the bank's site was not checked
