"""The bank-problem gate (bot/troubleshooting/diagnosis.py): no bank-error flow for a message with no sign of a
bank-connection problem, whatever the classifier said. Plain Python, no model."""

from __future__ import annotations

import pytest

from bot.troubleshooting import diagnosis as dx
from bot.troubleshooting.conversation import CLARIFY_OPTIONS, clarifying_buttons

# (text, error codes, banks the entity extractor found): real problems, worded as users write them
REAL_PROBLEMS = [
    ("bank feed not updating since tuesday", [], []),
    ("getting erorr 102 on my chase account", ["102"], ["Chase"]),
    ("quickbooks cant connect to wells fargo", [], ["Wells Fargo"]),
    ("transactions havent downloaded in 5 days", [], []),
    ("chase keeps failing", [], ["Chase"]),
    ("is barclays down? qbo says try again later", [], ["Barclays"]),
    ("changed my bank password and now it wont sync", [], []),
    ("my bank keeps texting me a code when quickbooks updates", [], []),
    ("the bank is sending a code every time", [], []),
    ("got a new card and quickbooks cant find the account", [], []),
    ("consent expired for monzo", [], ["Monzo"]),
    ("(9999)", ["9999"], []),
    ("error 155", ["155"], []),
    # the bank's sign-in, even where QuickBooks is named too
    ("quickbooks cant log in to my bank", [], []),
    ("cant sign in to quickbooks bank feed, chase wants a code", [], ["Chase"]),
    ("sign in to qbo then the bank asks for a security code", [], []),
]

# off-topic questions, some naming a bank: nothing here is a bank-connection problem
NO_SIGN = [
    ("what is the quarterly estimated tax rate", [], []),
    ("how do i record a refund from chase", [], ["Chase"]),
    ("chase statement reconciliation off by $20", [], ["Chase"]),
    ("retained earnings looks wrong", [], []),
    ("how do i run payroll", [], []),
    ("receipt matching not working", [], []),
    ("quickbooks is so slow today", [], []),
    ("the new layout is confusing", [], []),
    ("my customer payment link isnt working", [], []),
    ("signing off", [], []),
    ("invoice emails going to spam", [], []),
    ("amex annual fee which account", [], ["American Express"]),
    # QuickBooks' / Intuit's own sign-in is not the bank's
    ("cant log into qbo, 2fa code never arrives", [], []),
    ("signing into quickbooks asks for a code", [], []),
    ("forgot my quickbooks password", [], []),
]


@pytest.mark.parametrize("text, codes, banks", REAL_PROBLEMS)
def test_real_problems_show_a_sign(text, codes, banks):
    assert dx.bank_problem_signs(text, codes, banks), text
    for intent in dx.BANK_ERROR_INTENTS:
        assert not dx.needs_clarifying(intent, text, codes, banks)


@pytest.mark.parametrize("text, codes, banks", NO_SIGN)
def test_off_topic_questions_show_none_and_never_start_a_flow(text, codes, banks):
    assert dx.bank_problem_signs(text, codes, banks) == [], text
    for intent in dx.BANK_ERROR_INTENTS:
        assert dx.needs_clarifying(intent, text, codes, banks)
    # other intents are not the gate's business
    for intent in ("out_of_scope", "greet", "ask_duplicate_transactions", "nlu_fallback", None):
        assert not dx.needs_clarifying(intent, text, codes, banks)


def test_a_desktop_code_is_no_sign_but_an_online_code_is():
    assert dx.bank_problem_signs("quickbooks desktop OL-301", ["OL-301"]) == []
    assert dx.bank_problem_signs("hello 102", ["102"]) == ["code 102"]


def test_a_bank_name_needs_a_problem_word():
    assert not dx.has_bank_problem_sign("how do i record interest from capital one", banks=["Capital One"])
    assert dx.has_bank_problem_sign("capital one is broken", banks=["Capital One"])
    assert not dx.has_bank_problem_sign("capital one is broken")  # no bank found: just a phrase


def test_buttons_and_turns_built_in_code_are_never_held_back():
    assert not dx.needs_clarifying("report_bank_unavailable", "/report_bank_unavailable")
    assert not dx.needs_clarifying("report_bank_unavailable", None)
    assert dx.needs_clarifying("report_bank_unavailable", "what's the tax rate")


def test_adjacent_topics_each_have_a_response_and_a_button():
    assert set(dx.ADJACENT_INTENTS) <= set(CLARIFY_OPTIONS)
    assert dx.BANK_ERROR_INTENTS <= set(CLARIFY_OPTIONS)
    assert all(r.startswith("utter_adjacent_") for r in dx.ADJACENT_INTENTS.values())
    assert dx.gold_diagnosis("ask_duplicate_transactions") == dx.ADJACENT_TOPIC
    assert dx.diagnose("ask_duplicate_transactions", [], current=dx.BANK_UNAVAILABLE) == dx.BANK_UNAVAILABLE


def test_clarifying_buttons_offer_the_likeliest_topics_then_something_else():
    ranking = [("report_credentials", 0.62), ("out_of_scope", 0.2), ("ask_match_categorise", 0.1), ("greet", 0.05)]
    buttons = clarifying_buttons(ranking)
    assert [b["payload"] for b in buttons] == ["/report_credentials", "/ask_match_categorise", "/out_of_scope"]
    assert buttons[-1]["title"] == "Something else"
    # a bank error is offered even when adjacent topics rank above it
    ranking = [("ask_download_window", 0.5), ("ask_duplicate_transactions", 0.3), ("report_connection_failure", 0.1)]
    assert [b["payload"] for b in clarifying_buttons(ranking)] == [
        "/report_connection_failure",
        "/ask_download_window",
        "/out_of_scope",
    ]
    # nothing ranked (a turn built in code): a bank-feed error and duplicates
    assert [b["payload"] for b in clarifying_buttons([])] == [
        "/report_bank_unavailable",
        "/ask_duplicate_transactions",
        "/out_of_scope",
    ]
