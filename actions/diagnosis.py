"""From what the user said (intent + error codes) to a diagnosis: which family of bank-feed problem it is.

Codes are the strongest signal: a known QuickBooks Online code decides the diagnosis whatever the
wording. Otherwise the intent decides. Chit-chat only yields ``out_of_scope`` while nothing better is
known, so "thanks" at the end of a conversation does not erase a real diagnosis.
"""
from __future__ import annotations

from typing import Iterable, Optional

BANK_UNAVAILABLE = "bank_unavailable"
CREDENTIALS = "credentials"
VERIFICATION = "verification"
ACCOUNT_NOT_FOUND = "account_not_found"
CONSENT_EXPIRED = "consent_expired"
CONNECTION_FAILURE = "connection_failure"
OUT_OF_SCOPE = "out_of_scope"

DIAGNOSES = (
    BANK_UNAVAILABLE,
    CREDENTIALS,
    VERIFICATION,
    ACCOUNT_NOT_FOUND,
    CONSENT_EXPIRED,
    CONNECTION_FAILURE,
    OUT_OF_SCOPE,
)

CODE_DIAGNOSIS = {
    "102": BANK_UNAVAILABLE,
    "105": BANK_UNAVAILABLE,
    "103": CREDENTIALS,
    "179": CREDENTIALS,
    "185": VERIFICATION,
    "106": ACCOUNT_NOT_FOUND,
    "324": ACCOUNT_NOT_FOUND,
    "9999": CONNECTION_FAILURE,
}

REPORT_INTENTS = {
    "report_bank_unavailable": BANK_UNAVAILABLE,
    "report_credentials": CREDENTIALS,
    "report_verification": VERIFICATION,
    "report_account_not_found": ACCOUNT_NOT_FOUND,
    "report_consent_expired": CONSENT_EXPIRED,
    "report_connection_failure": CONNECTION_FAILURE,
    "out_of_scope": OUT_OF_SCOPE,
}

# Messages that say nothing about a bank feed: out of scope, but only when nothing better is known.
CHITCHAT_INTENTS = {"greet", "goodbye", "thank", "bot_challenge", "ask_capabilities"}

# The code QuickBooks shows by default for each diagnosis, used in replies when the user gave none.
DEFAULT_CODE = {BANK_UNAVAILABLE: "102", CREDENTIALS: "103", VERIFICATION: "185", ACCOUNT_NOT_FOUND: "324"}


def is_desktop_code(code: Optional[str]) -> bool:
    return bool(code) and code.upper().startswith("OL-")


def diagnose(intent: Optional[str], error_codes: Iterable[str] = (), current: Optional[str] = None) -> Optional[str]:
    """The diagnosis for one user message, or ``current`` when the message doesn't change it.

    ``intent`` is the classified intent (``nlu_fallback`` when unsure), ``error_codes`` the codes
    found in the message in order, ``current`` the diagnosis already held for the conversation.
    """
    codes = [c for c in error_codes if c]
    for code in codes:
        if code in CODE_DIAGNOSIS:
            return CODE_DIAGNOSIS[code]
    if codes and all(is_desktop_code(c) for c in codes) and intent not in REPORT_INTENTS.keys() - {OUT_OF_SCOPE}:
        return OUT_OF_SCOPE
    if intent in REPORT_INTENTS:
        return REPORT_INTENTS[intent]
    if codes and intent == "nlu_fallback" and not all(is_desktop_code(c) for c in codes):
        # an unknown QuickBooks code with nothing else to go on: a generic connection failure
        return CONNECTION_FAILURE
    if intent in CHITCHAT_INTENTS and current is None:
        return OUT_OF_SCOPE
    return current


def gold_diagnosis(intent: str) -> Optional[str]:
    """The diagnosis a labelled example stands for (for evaluation): None for dialogue intents."""
    if intent in REPORT_INTENTS:
        return REPORT_INTENTS[intent]
    if intent in CHITCHAT_INTENTS:
        return OUT_OF_SCOPE
    return None
