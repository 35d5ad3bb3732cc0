"""Property-based tests (hypothesis) of the parsers and the message path."""
from __future__ import annotations

import asyncio
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions import diagnosis as dx
from actions import troubleshooting as ts
from actions.bank_directory import Bank, BankDirectory
from actions.conversation import State, Troubleshooter, Turn
from actions.site_prober import ProbeResult
from bot.channels import inbound
from bot.nlu import spacy_pipeline as sp
from bot.nlu.entity_extractor import entities_from_doc, normalise_error_code
from bot.redaction import find_sensitive, redact

PROFILE = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DIGIT_RUN = re.compile(r"\d[\d -]{11,}\d")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


card_numbers = st.lists(st.integers(0, 9), min_size=15, max_size=15).map(
    lambda ds: "".join(map(str, ds))
).map(lambda body: body + str(next(d for d in range(10) if luhn_ok(body + str(d)))))


@PROFILE
@given(st.text(max_size=400))
def test_redact_never_fails_and_is_idempotent(text):
    once = redact(text)
    assert redact(once) == once
    for f in find_sensitive(text):
        assert 0 <= f.start < f.end <= len(text)


@PROFILE
@given(prefix=st.text(max_size=40), card=card_numbers, sep=st.sampled_from(["", " ", "-"]), suffix=st.text(max_size=40))
def test_a_pasted_card_number_never_survives(prefix, card, sep, suffix):
    grouped = sep.join(card[i:i + 4] for i in range(0, 16, 4))
    masked = redact(f"{prefix} {grouped} {suffix}")
    assert card not in re.sub(r"\D", "", masked) or card in re.sub(r"\D", "", prefix + suffix)


@PROFILE
@given(st.binary(max_size=2000), st.sampled_from(["application/json", "text/plain", None, "application/json; charset=utf-8"]))
def test_rest_payload_accepts_or_rejects_cleanly(body, content_type):
    try:
        data = inbound.rest_payload(body, content_type)
    except inbound.InboundError as exc:
        assert 400 <= exc.status < 500
        return
    assert isinstance(data["sender"], str) and isinstance(data["message"], str)
    assert data["message"].strip() and len(data["message"]) <= inbound.MAX_MESSAGE_CHARS


@PROFILE
@given(st.text(max_size=6000), st.text(max_size=200))
def test_well_formed_messages_are_kept_without_control_characters(message, sender):
    body = json.dumps({"sender": sender, "message": message}).encode()
    try:
        data = inbound.rest_payload(body, "application/json")
    except inbound.InboundError:
        return
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", data["message"])
    assert data["message"] == inbound.clean_text(message)


@pytest.fixture(scope="module")
def nlp_and_directory():
    directory = BankDirectory.default()
    return sp.build_pipeline(directory), directory


@PROFILE
@given(text=st.text(max_size=300))
def test_entity_extraction_never_fails_and_spans_are_inside_the_text(nlp_and_directory, text):
    nlp, directory = nlp_and_directory
    for entity in entities_from_doc(nlp(text), text, directory):
        assert 0 <= entity["start"] <= entity["end"] <= len(text)
        if entity["entity"] == "error_code":
            assert re.fullmatch(r"\d{3,4}|OL-\d{3}", entity["value"])
        if entity["entity"] == "bank":
            assert directory.get(entity["value"]) is not None


@PROFILE
@given(st.text(max_size=30))
def test_normalise_error_code_is_total(text):
    code = normalise_error_code(text)
    assert code is None or re.fullmatch(r"\d{3,4}|OL-\d{3}", code)


INTENTS = ["report_bank_unavailable", "report_credentials", "report_verification", "report_account_not_found",
           "report_consent_expired", "report_connection_failure", "out_of_scope", "greet", "goodbye", "thank",
           "affirm", "deny", "fixed_it", "already_tried", "ask_human", "inform", "stop", "bot_challenge",
           "ask_capabilities", "continue_troubleshooting", "bank_site_problem", "notify_when_back", "nlu_fallback"]


@PROFILE
@given(st.sampled_from(INTENTS + [None, "unknown_intent"]), st.lists(st.sampled_from(["102", "103", "185", "324", "9999", "155", "OL-301"]), max_size=3))
def test_diagnose_is_total(intent, codes):
    assert dx.diagnose(intent, codes) in dx.DIAGNOSES + (None,)


turns = st.lists(
    st.tuples(
        st.sampled_from(INTENTS),
        st.fixed_dictionaries({}, optional={
            "error_code": st.sampled_from(["102", "103", "185", "324", "9999", "155"]),
            "bank": st.sampled_from(["Chase", "Barclays"]),
            "browser": st.sampled_from(["chrome", "safari", "other"]),
        }),
    ),
    max_size=25,
)


@PROFILE
@given(turns)
def test_any_conversation_keeps_the_troubleshooting_state_consistent(conversation):
    directory = BankDirectory([Bank("Chase", "US", "bank", "https://secure.chase.example/", ()),
                               Bank("Barclays", "UK", "bank", "https://bank.barclays.example/", ())])

    async def check(key, url):
        return ProbeResult(status="up", url=url, reason="ok", http_status=200, elapsed_ms=5, checked_at=0.0)

    async def play():
        bot = Troubleshooter(directory, check)
        slots: dict = {}
        for intent, entities in conversation:
            slots.update({k: v for k, v in entities.items()})
            reply = await bot.handle(State.from_slots(slots), Turn(intent=intent, entities={k: [v] for k, v in entities.items()}))
            assert reply.messages or reply.slots.get("needs_bank"), (intent, entities)
            slots.update(reply.slots)
            tried = slots.get("steps_tried") or []
            assert len(tried) == len(set(tried))
            assert set(tried) <= set(ts.plan(slots.get("diagnosis"))) | set(ts.COMMON_STEPS)
            assert slots.get("diagnosis") in dx.DIAGNOSES + (None,)

    asyncio.run(play())
