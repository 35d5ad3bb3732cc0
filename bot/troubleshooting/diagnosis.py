"""From what the user said (intent + error codes) to a diagnosis: which family of bank-feed problem it is.

Codes are the strongest signal: a known QuickBooks Online code decides the diagnosis whatever the
wording. Otherwise the intent decides. Chit-chat only yields ``out_of_scope`` while nothing better is
known, so "thanks" at the end of a conversation does not erase a real diagnosis.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional

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
    """The diagnosis a labelled example stands for (for evaluation): None for dialogue intents,
    ``ADJACENT_TOPIC`` for the adjacent bank-feed questions."""
    if intent in ADJACENT_INTENTS:
        return ADJACENT_TOPIC
    if intent in REPORT_INTENTS:
        return REPORT_INTENTS[intent]
    if intent in CHITCHAT_INTENTS:
        return OUT_OF_SCOPE
    return None


# ---------------------------------------------------------------------- adjacent topics and the problem gate
# Bank-feed questions that are not connection errors: each gets a short answer (domain response
# utter_adjacent_<topic>), never a troubleshooting flow, and leaves the diagnosis as it was.
ADJACENT_TOPIC = "adjacent_topic"  # the label these share in the evaluation's diagnosis view (not a slot value)
ADJACENT_INTENTS = {
    "ask_duplicate_transactions": "utter_adjacent_duplicate_transactions",
    "ask_match_categorise": "utter_adjacent_match_categorise",
    "ask_disconnect_reconnect": "utter_adjacent_disconnect_reconnect",
    "ask_download_window": "utter_adjacent_download_window",
}

#: The intents that start a bank-error troubleshooting flow.
BANK_ERROR_INTENTS = {intent for intent, diagnosis in REPORT_INTENTS.items() if diagnosis != OUT_OF_SCOPE}

# Phrases that only come up when a bank connection is in trouble (lower-cased text, typos included).
_FEED = r"(?:bank\s*feeds?|b[na]{2}k\s*feed|\bfeeds?\b|banking\s+(?:tab|page)|for\s+review|update\s+button)"
_CONNECTION = (
    r"(?:\b(?:re)?(?:connect|conect)(?:s|ed|ing|ion|ions)?\b|(?<!payment )\blink(?:ed|ing)?\b|\bsync\w*"
    r"|synchroni[sz]\w*|\bupdat(?:e|es|ed|ing)\b|\bdown\s?load\w*|\bimport\w*|\bpull\w*|\brefresh\w*"
    r"|\bcom(?:e|es|ing)\s+(?:in|through|thru))"
)
_NEGATION = r"(?:\b(?:not|never|stopped|stuck|wont|cant|isnt|arent|doesnt|didnt|havent|hasnt|quit|fail\w*)\b|\w+n't\b)"
_TRANSACTIONS_MISSING = (
    r"(?:\btransactions?|\bnothing(?:\s+new)?|\bno\s+new)\b.{0,40}?"
    r"(?:\bnot|n'?t|\bstopped|\bmissing|\bnever|\bsince|\bin\s+\w+\s+(?:days|weeks))\b"
    r"|\bmissing\s+transactions|\bnothing\s+(?:new\s+)?(?:has\s+)?(?:downloaded|came|comes|imported|synced|showed)"
)
_SITE_DOWN = (
    r"(?:maintenance|temporar(?:il)?y\s+(?:un)?available|unavailable|outage|\bdown\b|not\s+(?:responding|answering)"
    r"|isn'?t\s+(?:responding|answering)|server|technical\s+(?:difficult|issue|trouble|problem)|can'?t\s+reach"
    r"|cannot\s+reach|\breach\b|try\s+again\s+later|last\s+updated|online\s+banking|bank'?s?\s+(?:web)?site"
    r"|connection\s+(?:error|problem|issue|fail\w*)|(?:error|problem|issue|trouble)\s+connecting"
    r"|(?:click|press|hit)\w*\s+update)"
)
_SIGN_IN = (
    r"(?:\bsign[\s-]?in\b|\blog[\s-]?(?:in|on)\b|password|user\s?(?:id|name)|credential|\bpin\b|customer\s+number"
    r"|auto-?fill)"
)
_VERIFICATION = (
    r"(?:security\s+(?:question|answer|code|key|prompt|check|token|details)|one[\s-]?time\s+(?:code|pass\w*)|verif\w*"
    r"|\bmfa\b|\b2fa\b|(?:two|2)[\s-]?(?:factor|step)|multi[\s-]?factor|passcode|additional\s+info\w*|more\s+info\w*"
    r"|challenge|authenticat\w*|(?:extra|additional)\s+(?:security|verification|info)"
    r"|(?:text\w*|sms|access|safepass|reader|email\w*|send\w*|sent)\s+(?:\w+\s+){0,3}?codes?\b"
    r"|\bcodes?\s+(?:\w+\s+){0,3}?(?:phone|app|text|sms|bank)\b|approve\b.{0,30}\bapp\b)"
)
_ACCOUNT_MISSING = (
    r"(?:can'?t\s+(?:find|locate|tell)|cannot\s+(?:find|locate|be\s+located)|not\s+found|no\s+longer|doesn'?t\s+exist"
    r"|(?:new|replacement|replaced|reissued)\s+(?:\w+\s+)?(?:card|account|number)|fix\s+now|renumbered|sort\s+code"
    r"|account\s+numbers?\s+(?:\w+\s+)?(?:changed|switched)|(?:changed|switched)\s+(?:my\s+|our\s+)?account\s+numbers?"
    r"|(?:same|identical|duplicate)\s+(?:\w+\s+)?(?:names?|nicknames?)|only\s+(?:\w+\s+)?(?:finds?|shows?|connects?|sees?)"
    r"|\blost\s+(?:it|them|my)|\banymore\b|\b(?:closed|renamed|merged|vanished|disappeared|missing|gone)\b)"
)
_ACCOUNT_WORD = r"\b(?:accounts?|cards?|banks?|feeds?|savings|checking|chequing|loan|line\s+of\s+credit)\b"
_CONSENT = (
    r"(?:consent|re-?authori[sz]\w*|open\s+banking|psd2|renew\w*|(?:90|ninety)\s+days?|data\s+sharing"
    r"|sharing\s+(?:\w+\s+){0,2}data|access\s+to\s+(?:\w+\s+){0,2}data|permission\s+(?:again|to\s+access)"
    r"|\bdata\s+(?:has\s+)?(?:expired|expires|ran\s+out)|(?:access|accounts?)\s+(?:has\s+)?expired)"
)
_PROBLEM_WORD = (
    r"(?:error|erorr|eror|\berr\b|problem|issue|fail\w*|broke\w*|not\s+working|stopped|\bdown\b|won'?t|can'?t|cannot"
    r"|isn'?t|aren'?t|doesn'?t|missing|stuck|frozen|keeps?\s+(?:saying|asking|telling|showing|failing))"
)

_SIGNS = [
    re.compile(pattern)
    for pattern in (
        _FEED,
        rf"{_NEGATION}.{{0,25}}?{_CONNECTION}",
        rf"{_CONNECTION}.{{0,25}}?{_NEGATION}",
        rf"{_CONNECTION}\s+(?:\w+\s+){{0,3}}?(?:bank|transactions?|feed|checking|savings)\b",
        r"\bbanks?\s+(?:sync|connection|link|logins?)\w*|\blogins?\s+(?:at|for|with)\s+(?:\w+\s+)?bank",
        _TRANSACTIONS_MISSING,
        _SITE_DOWN,
        _SIGN_IN,
        _VERIFICATION,
        _CONSENT,
    )
]
# Signing in to QuickBooks / Intuit itself (their own account, its password or its sign-in code) is not the
# bank's sign-in: such a message shows no bank-connection problem unless something else in it does.
_OWN_SIGN_IN_RE = re.compile(
    r"(?:sign(?:ing)?[\s-]?(?:in|on)|log(?:ging)?[\s-]?(?:in|on)|login|get)(?:\s+in)?\s*to\s+(?:my\s+|our\s+|the\s+)?"
    r"(?:quickbooks|qbo|qb|intuit)\b|\b(?:intuit|quickbooks|qbo)(?:\s+online)?\s+(?:account\s+)?"
    r"(?:login|log[\s-]?in|sign[\s-]?in|password|account\s+password)\b"
)
_BANK_WORD_RE = re.compile(r"\bbanks?\b|\bbanking\b")
_SIGN_IN_PATTERNS = {_SIGNS[-3].pattern, _SIGNS[-2].pattern}  # _SIGN_IN, _VERIFICATION
_ACCOUNT_MISSING_RE = re.compile(_ACCOUNT_MISSING)
_ACCOUNT_WORD_RE = re.compile(_ACCOUNT_WORD)
_PROBLEM_WORD_RE = re.compile(_PROBLEM_WORD)


def bank_problem_signs(text: Optional[str], error_codes: Iterable[str] = (), banks: Iterable[str] = ()) -> List[str]:
    """What in a message points to a bank-connection problem (empty when nothing does).

    An Online error code; a bank-feed phrase (the feed, sync, a download or update that fails, the bank's
    site down or in maintenance, sign-in, extra verification, consent, an account that can't be found);
    or a bank named together with a problem word ("chase keeps failing"). Plain words, no classifier:
    ``needs_clarifying`` applies it to what the classifier said.
    """
    signs = [f"code {c}" for c in error_codes if c and not is_desktop_code(c)]
    lowered = " ".join((text or "").lower().replace("\u2019", "'").split())
    found = [(p.pattern, m.group(0)) for p, m in ((p, p.search(lowered)) for p in _SIGNS) if m]
    named = [b for b in banks if b]
    if _OWN_SIGN_IN_RE.search(lowered) and not named and not _BANK_WORD_RE.search(lowered):
        found = [(p, sign) for p, sign in found if p not in _SIGN_IN_PATTERNS]  # QuickBooks' own sign-in
    signs += [sign for _, sign in found]
    account = _ACCOUNT_MISSING_RE.search(lowered)
    if account and _ACCOUNT_WORD_RE.search(lowered):
        signs.append(account.group(0))
    problem = _PROBLEM_WORD_RE.search(lowered)
    if named and problem:
        signs.append(f"{named[0]} + {problem.group(0)}")
    return signs


def has_bank_problem_sign(text: Optional[str], error_codes: Iterable[str] = (), banks: Iterable[str] = ()) -> bool:
    return bool(bank_problem_signs(text, error_codes, banks))


def needs_clarifying(
    intent: Optional[str],
    text: Optional[str],
    error_codes: Iterable[str] = (),
    banks: Iterable[str] = (),
) -> bool:
    """True when a bank-error intent must not start its flow because the message shows no sign of a
    bank-connection problem: the user gets one clarifying question instead, whatever the classifier's
    confidence (the off-topic questions it sent into bank-error flows had 0.98 to 1.0, docs/nlu.md).

    Button payloads ("/report_bank_unavailable") and turns without text (built in code) are never held back.
    """
    if intent not in BANK_ERROR_INTENTS or text is None or text.lstrip().startswith("/"):
        return False
    return not has_bank_problem_sign(text, error_codes, banks)
