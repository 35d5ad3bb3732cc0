"""Property-based tests (hypothesis) of the parsers and the message path."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.banks.directory import Bank, BankDirectory
from bot.banks.site_prober import ProbeResult
from bot.nlu import spacy_pipeline as sp
from bot.redaction import find_sensitive, redact
from bot.server.channels import inbound
from bot.server.nlu.entity_extractor import entities_from_doc, normalise_error_code
from bot.troubleshooting import diagnosis as dx
from bot.troubleshooting import steps as ts
from bot.troubleshooting.conversation import State, Troubleshooter, Turn

PROFILE = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DIGIT_RUN = re.compile(r"\d[\d -]{11,}\d")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


card_numbers = (
    st.lists(st.integers(0, 9), min_size=15, max_size=15)
    .map(lambda ds: "".join(map(str, ds)))
    .map(lambda body: body + str(next(d for d in range(10) if luhn_ok(body + str(d)))))
)


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
    grouped = sep.join(card[i : i + 4] for i in range(0, 16, 4))
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


INTENTS = [
    "report_bank_unavailable",
    "report_credentials",
    "report_verification",
    "report_account_not_found",
    "report_consent_expired",
    "report_connection_failure",
    "out_of_scope",
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "fixed_it",
    "already_tried",
    "ask_human",
    "inform",
    "stop",
    "bot_challenge",
    "ask_capabilities",
    "continue_troubleshooting",
    "bank_site_problem",
    "notify_when_back",
    "nlu_fallback",
    "ask_duplicate_transactions",
    "ask_match_categorise",
    "ask_disconnect_reconnect",
    "ask_download_window",
]


@PROFILE
@given(
    st.sampled_from(INTENTS + [None, "unknown_intent"]),
    st.lists(st.sampled_from(["102", "103", "185", "324", "9999", "155", "OL-301"]), max_size=3),
)
def test_diagnose_is_total(intent, codes):
    assert dx.diagnose(intent, codes) in dx.DIAGNOSES + (None,)


turns = st.lists(
    st.tuples(
        st.sampled_from(INTENTS),
        st.fixed_dictionaries(
            {},
            optional={
                "error_code": st.sampled_from(["102", "103", "185", "324", "9999", "155"]),
                "bank": st.sampled_from(["Chase", "Barclays"]),
                "browser": st.sampled_from(["chrome", "safari", "other"]),
            },
        ),
    ),
    max_size=25,
)


@PROFILE
@given(turns)
def test_any_conversation_keeps_the_troubleshooting_state_consistent(conversation):
    directory = BankDirectory(
        [
            Bank("Chase", "US", "bank", "https://secure.chase.example/", ()),
            Bank("Barclays", "UK", "bank", "https://bank.barclays.example/", ()),
        ]
    )

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


# ------------------------------------------------------------------ redaction: every family, any separators and context
SEPARATORS = st.sampled_from(["", " ", "-", ".", "/", " - "])
TRAILING = st.sampled_from(["", ".", ",", "!", "?", ")", ";", ":", "..."])
CONTEXT_BEFORE = st.sampled_from(["", "hi, ", "error 102 at chase. ", "QuickBooks says 103 and ", "ok so\n", "(", '"'])
CONTEXT_AFTER = st.sampled_from(["", " thanks", " and error 185", " - is that why?", "\nwhat now", " for wells fargo"])
WORDS = st.sampled_from(["purple", "monkey", "dishwasher", "horse", "battery", "staple", "orange", "river", "castle", "piano"])


def unseparated(text: str) -> str:
    return re.sub(r"[\s.\-/]", "", text)


def survives(secret: str, masked: str) -> bool:
    return secret in masked or (sum(c.isdigit() for c in secret) >= 6 and unseparated(secret) in unseparated(masked))


@PROFILE
@given(CONTEXT_BEFORE, card_numbers, SEPARATORS, TRAILING, CONTEXT_AFTER)
def test_a_card_number_with_any_separator_and_trailing_punctuation_is_masked(before, card, sep, trailing, after):
    grouped = sep.join(card[i : i + 4] for i in range(0, 16, 4))
    masked = redact(f"{before}{grouped}{trailing}{after}")
    assert not survives(grouped, masked), masked
    assert redact(masked) == masked


PASSWORD_KEYWORDS = st.sampled_from(
    [
        "password",
        "Password",
        "passwd",
        "pwd",
        "pw",
        "pass",
        "passcode",
        "PIN",
        "pin code",
        "bank password",
        "online banking password",
        "login password",
    ]
)
CONNECTORS = st.sampled_from([" is ", ": ", " = ", "=", ":", " ", " is: ", "'s ", " was ", " should be "])
passwords = st.from_regex(r"[A-Za-z]{3,8}[0-9]{1,4}[!#$%&*]?", fullmatch=True)


@PROFILE
@given(CONTEXT_BEFORE, st.sampled_from(["", "my ", "the "]), PASSWORD_KEYWORDS, CONNECTORS, passwords, TRAILING, CONTEXT_AFTER)
def test_a_password_after_a_keyword_is_masked(before, det, keyword, connector, password, trailing, after):
    masked = redact(f"{before}{det}{keyword}{connector}{password}{trailing}{after}")
    assert password not in masked, masked
    assert redact(masked) == masked


@PROFILE
@given(
    st.sampled_from(["passphrase", "memorable phrase", "security answer", "secret answer", "password"]),
    st.sampled_from([" is ", ": ", " is: "]),
    st.lists(WORDS, min_size=2, max_size=5),
    TRAILING,
    CONTEXT_AFTER,
)
def test_a_multi_word_passphrase_is_masked_to_the_end_of_the_clause(keyword, connector, words, trailing, after):
    phrase = " ".join(words)
    masked = redact(f"my {keyword}{connector}{phrase}{trailing}{after}")
    assert not any(w in masked for w in words), masked
    assert ("185" in masked) == ("185" in after) and ("wells fargo" in masked) == ("wells fargo" in after)


@PROFILE
@given(
    st.sampled_from(["https", "http", "ftp"]),
    st.from_regex(r"[a-z][a-z0-9._]{2,10}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9!$%*]{4,16}", fullmatch=True),
    st.sampled_from(["bank.com", "secure.chase.com", "online.td.ca"]),
    st.sampled_from(["", "/", "/login?x=1"]),
    TRAILING,
)
def test_sign_in_details_in_a_web_address_are_masked(scheme, user, password, host, path, trailing):
    url = f"{scheme}://{user}:{password}@{host}{path}"
    masked = redact(f"I log in at {url}{trailing} every day")
    assert f"{user}:{password}" not in masked and host in masked, masked


tokens = st.one_of(
    st.from_regex(r"xox[bpa]-[0-9]{10,12}-[A-Za-z0-9]{12,24}", fullmatch=True),
    st.from_regex(r"sk_live_[A-Za-z0-9]{16,30}", fullmatch=True),
    st.from_regex(r"ghp_[A-Za-z0-9]{36}", fullmatch=True),
    st.from_regex(r"AKIA[0-9A-Z]{16}", fullmatch=True),
    st.from_regex(r"eyJ[A-Za-z0-9_-]{10,30}\.[A-Za-z0-9_-]{10,40}\.[A-Za-z0-9_-]{10,40}", fullmatch=True),
    st.from_regex(r"Bearer [A-Za-z0-9]{6,10}[0-9][A-Za-z0-9._-]{8,30}", fullmatch=True),
)


@PROFILE
@given(CONTEXT_BEFORE, tokens, TRAILING, CONTEXT_AFTER)
def test_tokens_and_keys_are_masked(before, token, trailing, after):
    masked = redact(f"{before}{token}{trailing}{after}")
    secret = token.split(" ", 1)[-1]
    assert secret not in masked, masked


otp_codes = st.from_regex(r"[0-9]{4,8}", fullmatch=True).filter(lambda c: not c.startswith("999"))


@PROFILE
@given(
    st.sampled_from(
        [
            "code",
            "the code",
            "verification code",
            "security code",
            "OTP",
            "2FA code",
            "one-time passcode",
            "the code they texted me",
            "sms code",
        ]
    ),
    st.sampled_from([" ", " is ", ": ", " was ", " for error 185 is "]),
    otp_codes,
    TRAILING,
    CONTEXT_AFTER,
)
def test_one_time_codes_after_a_code_word_are_masked(keyword, connector, code, trailing, after):
    masked = redact(f"{keyword}{connector}{code}{trailing}{after}")
    assert not re.search(rf"(?<!\d){code}(?!\d)", masked), masked


@PROFILE
@given(
    st.integers(1, 665),
    st.integers(1, 99),
    st.integers(1, 9999),
    st.sampled_from(["", "SSN ", "my social security number is ", "ssn: "]),
    TRAILING,
)
def test_social_security_numbers_are_masked(area, group, serial, keyword, trailing):
    ssn = f"{area:03d}-{group:02d}-{serial:04d}"
    masked = redact(f"{keyword}{ssn}{trailing} for the business")
    assert unseparated(ssn) not in unseparated(masked), masked


def aba(body: str) -> str:
    return body + next(str(d) for d in range(10) if __import__("bot.redaction", fromlist=["_aba_ok"])._aba_ok(body + str(d)))


def iban(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


@PROFILE
@given(
    st.from_regex(r"[0-9]{8}", fullmatch=True),
    st.from_regex(r"[0-9]{8,12}", fullmatch=True),
    st.sampled_from(["account", "acct", "account number", "acct #", "checking account", "a/c"]),
    st.sampled_from([" ", ": ", " is "]),
    SEPARATORS,
    TRAILING,
)
def test_routing_and_account_numbers_after_their_keywords_are_masked(routing_body, account, keyword, connector, sep, trailing):
    routing = aba(routing_body)
    account = sep.join(account[i : i + 4] for i in range(0, len(account), 4))
    masked = redact(f"routing {routing} and {keyword}{connector}{account}{trailing}")
    assert routing not in masked and unseparated(account) not in unseparated(masked), masked


@PROFILE
@given(
    st.sampled_from(["DE", "GB", "FR", "NL", "ES", "IT", "NO", "MT"]),
    st.from_regex(r"[0-9]{30}", fullmatch=True),
    st.sampled_from(["", " "]),
    TRAILING,
)
def test_ibans_are_masked(country, digits, sep, trailing):
    from bot.redaction import _IBAN_LENGTHS

    number = iban(country, digits[: _IBAN_LENGTHS[country] - 4])  # the country's own IBAN length
    spaced = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    masked = redact(f"our IBAN is {spaced}{trailing} thanks")
    assert unseparated(number) not in unseparated(masked), masked


@PROFILE
@given(
    st.integers(1900, 2099),
    st.integers(1, 12),
    st.integers(1, 28),
    st.sampled_from(["{y}-{m:02d}-{d:02d}", "{m:02d}/{d:02d}/{y}", "{d:02d}.{m:02d}.{y}", "{y}{m:02d}{d:02d}"]),
    st.sampled_from(["account", "acct no", "account number"]),
)
def test_a_date_is_kept_unless_it_follows_an_account_word(y, m, d, fmt, keyword):
    date = fmt.format(y=y, m=m, d=d)
    assert redact(f"the feed stopped on {date} with error 102") == f"the feed stopped on {date} with error 102"
    assert unseparated(date) not in unseparated(redact(f"my {keyword} {date}"))


ERROR_CODES = st.sampled_from(
    ["102", "103", "105", "106", "108", "109", "155", "168", "179", "185", "324", "355", "9999", "OL-301"]
)
BANKS = st.sampled_from(
    ["chase", "Bank of America", "wells fargo", "TD Canada Trust", "Barclays", "capital one 360", "RBC", "USAA"]
)


@PROFILE
@given(
    st.lists(ERROR_CODES, min_size=1, max_size=4),
    BANKS,
    st.sampled_from(
        [
            "error {codes} at {bank}",
            "{bank} gives me {codes}",
            "getting ({codes}) with {bank} since monday",
            "code {codes} keeps popping up for {bank}",
            "qbo error code {codes} for {bank}, i changed my password yesterday",
            "{bank}: errors {codes}. my password is correct",
            "is {codes} a password problem with {bank}?",
            "the bank wants a security code, error {codes} at {bank}",
            "{bank} pin expired and now {codes}",
        ]
    ),
    st.sampled_from([" ", ", ", " and ", " / ", " then "]),
)
def test_error_codes_bank_names_and_ordinary_sentences_are_never_masked(codes, bank, template, joiner):
    text = template.format(codes=joiner.join(codes), bank=bank)
    assert redact(text) == text
