"""The order of fixes for each diagnosis, and how far a conversation has got through them."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from actions import diagnosis as dx

SITE_CHECK = "site_check"
REFRESH = "refresh"
CREDENTIAL_CHECK = "credential_check"
CLEAR_CACHE = "clear_cache"
PRIVATE_WINDOW = "private_window"
MANUAL_UPLOAD = "manual_upload"
WAIT_A_DAY = "wait_a_day"
ANSWER_SECURITY_CHECK = "answer_security_check"
FIX_ACCOUNT_MAPPING = "fix_account_mapping"
RENEW_CONSENT = "renew_consent"

# Intuit's order for Error 102, as the source article lays it out.
COMMON_STEPS: Tuple[str, ...] = (
    SITE_CHECK,
    REFRESH,
    CREDENTIAL_CHECK,
    CLEAR_CACHE,
    PRIVATE_WINDOW,
    MANUAL_UPLOAD,
    WAIT_A_DAY,
)

# Neighbouring codes start with their own short path, then join the common steps.
OWN_PATH: Dict[str, Tuple[str, ...]] = {
    dx.CREDENTIALS: (CREDENTIAL_CHECK,),
    dx.VERIFICATION: (ANSWER_SECURITY_CHECK,),
    dx.ACCOUNT_NOT_FOUND: (FIX_ACCOUNT_MAPPING,),
    dx.CONSENT_EXPIRED: (RENEW_CONSENT,),
}

STEP_TITLES: Dict[str, str] = {
    SITE_CHECK: "checking the bank's website",
    REFRESH: "refreshing the connection",
    CREDENTIAL_CHECK: "checking your sign-in details",
    CLEAR_CACHE: "clearing the browser cache",
    PRIVATE_WINDOW: "trying a private window",
    MANUAL_UPLOAD: "uploading transactions manually",
    WAIT_A_DAY: "waiting a day for the bank",
    ANSWER_SECURITY_CHECK: "answering the bank's security check",
    FIX_ACCOUNT_MAPPING: "re-linking the account",
    RENEW_CONSENT: "renewing the bank consent",
}

# Steps whose text is a single domain response called utter_step_<name>.
SIMPLE_STEP_RESPONSES = {
    REFRESH, PRIVATE_WINDOW, MANUAL_UPLOAD, WAIT_A_DAY, ANSWER_SECURITY_CHECK, FIX_ACCOUNT_MAPPING, RENEW_CONSENT,
}

OUTCOME_FAILED = "did_not_help"
OUTCOME_ALREADY_TRIED = "already_tried"
OUTCOME_BANK_PROBLEM = "bank_site_shows_problem"
OUTCOME_FIXED = "fixed"
OUTCOME_SKIPPED_OUTAGE = "skipped_known_outage"


def plan(diagnosis: Optional[str]) -> Tuple[str, ...]:
    """Every step for a diagnosis, in order (empty for out-of-scope or unknown)."""
    if diagnosis is None or diagnosis == dx.OUT_OF_SCOPE:
        return ()
    own = OWN_PATH.get(diagnosis, ())
    return own + tuple(step for step in COMMON_STEPS if step not in own)


def remaining_steps(diagnosis: Optional[str], steps_tried: Sequence[str]) -> List[str]:
    tried = set(steps_tried)
    return [step for step in plan(diagnosis) if step not in tried]


def next_step(diagnosis: Optional[str], steps_tried: Sequence[str]) -> Optional[str]:
    remaining = remaining_steps(diagnosis, steps_tried)
    return remaining[0] if remaining else None


def record_step(steps_tried: Sequence[str], step: str) -> List[str]:
    """``steps_tried`` with ``step`` appended once (order of first attempt is kept)."""
    return list(steps_tried) + ([step] if step not in steps_tried else [])


def describe_steps(steps: Sequence[str]) -> str:
    titles = [STEP_TITLES.get(s, s) for s in steps]
    if not titles:
        return "nothing yet"
    if len(titles) == 1:
        return titles[0]
    return ", ".join(titles[:-1]) + " and " + titles[-1]
