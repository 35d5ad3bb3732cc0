"""The answer to "Which bank is the feed for?", classified before anything is taken as a bank name.

A message at that question is one of: a bank of the directory, a sign-in address, an explicit skip,
a bank the directory does not know (taken as given: "Comerica", "Farmers State Bank"), a pasted
secret (never quoted back), or no answer at all: a button of an earlier message ("/deny"), a
question ("what's the weather?", "how do I record a refund"), another request ("talk to a person").
The last kind is handed back to the troubleshooter to be handled as what it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

from bot.banks.directory import BankDirectory
from bot.redaction import sensitive_kinds

BANK = "bank"
URL = "url"
UNLISTED = "unlisted"
SKIP = "skip"
SECRET = "secret"
NOT_AN_ANSWER = "not_an_answer"

SKIP_WORDS = {
    "skip",
    "dont know",
    "don't know",
    "no idea",
    "not sure",
    "pass",
    "none",
    "n/a",
    "idk",
    "skip it",
    "skip that",
    "skip the check",
    "i don't know",
    "i dont know",
    "rather not say",
}
#: Intents that, said with confidence, are never a bank's name (the troubleshooter handles them).
NOT_A_NAME_INTENTS = {
    "affirm",
    "deny",
    "fixed_it",
    "already_tried",
    "ask_human",
    "stop",
    "greet",
    "goodbye",
    "thank",
    "bot_challenge",
    "ask_capabilities",
    "continue_troubleshooting",
    "bank_site_problem",
    "notify_when_back",
    "out_of_scope",
    "report_bank_unavailable",
    "report_credentials",
    "report_verification",
    "report_account_not_found",
    "report_consent_expired",
    "report_connection_failure",
    "explain_step",
    "relapse",
    "remind_me",
    "off_topic",
}
NAME_CONFIDENCE = 0.8
_BANKISH = re.compile(r"\b(bank|banc|banco|credit union|cu|savings|trust|financial|federal|card|capital)\b", re.I)
_QUESTION_START = re.compile(
    r"^(what|what's|whats|how|why|when|where|who|which|can|could|would|will|do|does|did|is|are|should|tell me|"
    r"explain|help)\b",
    re.I,
)
_LEAD_IN = re.compile(
    r"^(it'?s|it is|its|my bank is|the bank is|we bank with|we use|we're with|we are with|i bank with|"
    r"i use|bank is|with|at)\s+",
    re.I,
)
_NAME = re.compile(r"^[\w&'.,\- ]+$")
#: Descriptions, not names: the bank is unknown but the customer has said what they can.
GENERIC = {
    "a credit union",
    "credit union",
    "a local bank",
    "local bank",
    "a small bank",
    "small bank",
    "my bank",
    "a bank",
    "the bank",
    "a local credit union",
    "local credit union",
    "my credit union",
}
MAX_NAME_CHARS = 60
MAX_NAME_WORDS = 7


@dataclass(frozen=True)
class BankAnswer:
    kind: str
    bank: Optional[str] = None  # a directory bank's canonical name
    url: Optional[str] = None
    name: Optional[str] = None  # an unlisted bank's name as the customer gave it (None for "a credit union")


def classify(
    text: str, intent: Optional[str], confidence: float, entities: Mapping[str, str], directory: BankDirectory
) -> BankAnswer:
    """What the message ``text`` (with its NLU ``intent`` and first ``entities``) says to "which bank?"."""
    text = (text or "").strip()
    if text.startswith("/"):
        bank = directory.get(entities.get("bank") or "") if entities.get("bank") else None
        if bank:
            return BankAnswer(BANK, bank=bank.name)
        if intent == "skip_step":
            return BankAnswer(SKIP)
        return BankAnswer(NOT_AN_ANSWER)  # a button payload, never a bank's name
    bank = directory.get(entities.get("bank") or text) if (entities.get("bank") or text) else None
    if bank:
        return BankAnswer(BANK, bank=bank.name)
    url = entities.get("bank_url")
    if url:
        known = directory.from_url(url)
        return BankAnswer(URL, url=url, bank=known.name if known else None)
    if sensitive_kinds(text) or entities.get("sensitive_data"):
        return BankAnswer(SECRET)
    plain = text.lower().strip(" .!")
    if plain in SKIP_WORDS or intent in ("skip_step", "dont_know") and confidence >= NAME_CONFIDENCE:
        return BankAnswer(SKIP)
    if intent in NOT_A_NAME_INTENTS and confidence >= NAME_CONFIDENCE and not _BANKISH.search(text):
        return BankAnswer(NOT_AN_ANSWER)
    if "?" in text or _QUESTION_START.match(text):
        return BankAnswer(NOT_AN_ANSWER)
    name = _LEAD_IN.sub("", text).strip(" .!,")
    if name.lower() in GENERIC:
        return BankAnswer(UNLISTED, name=None)
    if (
        0 < len(name) <= MAX_NAME_CHARS
        and len(name.split()) <= MAX_NAME_WORDS
        and _NAME.match(name)
        and any(c.isalpha() for c in name)
    ):
        return BankAnswer(UNLISTED, name=name)
    return BankAnswer(NOT_AN_ANSWER)  # a sentence about something else: handled as what it is


def ask_response(count: int) -> str:
    """How "which bank?" is worded the ``count``-th time it is asked again (0: the first time): each
    wording differs from the one before, and from the second re-ask on it offers a way on."""
    if count <= 0:
        return "utter_ask_bank_site"
    if count == 1:
        return "utter_reask_bank_site"
    return "utter_bank_site_offer_skip" if count % 2 == 0 else "utter_reask_bank_site_short"
