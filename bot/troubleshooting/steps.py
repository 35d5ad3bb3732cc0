"""The order of fixes for each diagnosis, and how far a conversation has got through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from bot.troubleshooting import diagnosis as dx

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
    REFRESH,
    PRIVATE_WINDOW,
    MANUAL_UPLOAD,
    WAIT_A_DAY,
    ANSWER_SECURITY_CHECK,
    FIX_ACCOUNT_MAPPING,
    RENEW_CONSENT,
}

OUTCOME_FAILED = "did_not_help"
OUTCOME_ALREADY_TRIED = "already_tried"
OUTCOME_BANK_PROBLEM = "bank_site_shows_problem"
OUTCOME_FIXED = "fixed"
OUTCOME_RELAPSED = "fixed_then_failed_again"
OUTCOME_SKIPPED_OUTAGE = "skipped_known_outage"
OUTCOME_SKIPPED_BY_CUSTOMER = "skipped_by_customer"
OUTCOME_SKIPPED_FOR_PERSON = "skipped_for_a_person"

# Outcomes of a step the bot walked the customer through (whatever came of it).
WALKED_OUTCOMES = (OUTCOME_FAILED, OUTCOME_BANK_PROBLEM, OUTCOME_FIXED, OUTCOME_RELAPSED)
# Outcomes of a step nobody did in this conversation, with the reason as the customer and the specialist read it.
SKIP_REASONS: Dict[str, str] = {
    OUTCOME_SKIPPED_OUTAGE: "the bank has a known outage, so it could not help",
    OUTCOME_SKIPPED_BY_CUSTOMER: "the customer asked to skip it",
    OUTCOME_SKIPPED_FOR_PERSON: "the customer chose to talk to a person instead",
}


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


@dataclass(frozen=True)
class Record:
    """What happened to each step, kept apart: walked through with the bot, already tried by the
    customer before (their word), and skipped by the bot or at the customer's request (with why).

    ``steps_tried`` (the slot) is only the bot's progress through the plan: every step in it is in
    exactly one of these three."""

    walked: List[str]
    already_tried: List[str]
    skipped: Dict[str, str]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "steps_walked": list(self.walked),
            "steps_already_tried": list(self.already_tried),
            "steps_skipped": dict(self.skipped),
        }

    @property
    def tried(self) -> List[str]:
        """Steps somebody actually did: walked through here, or tried by the customer before."""
        return self.walked + self.already_tried

    def sentence(self) -> str:
        """The record in plain words, for the customer's closing summary and the specialist."""
        parts = []
        if self.walked:
            parts.append(f"we went through {describe_steps(self.walked)}")
        if self.already_tried:
            parts.append(f"you had already tried {describe_steps(self.already_tried)}")
        for reason in dict.fromkeys(self.skipped.values()):
            steps = [s for s, r in self.skipped.items() if r == reason]
            parts.append(f"we skipped {describe_steps(steps)} ({reason})")
        if not parts:
            return "no fixes were tried yet"
        return "; ".join(parts)


def record(steps_tried: Sequence[str], outcomes: Mapping[str, str]) -> Record:
    """Splits the progress (``steps_tried`` + ``step_outcomes``) into the honest three-way record."""
    walked: List[str] = []
    already: List[str] = []
    skipped: Dict[str, str] = {}
    for step in steps_tried:
        outcome = outcomes.get(step)
        if outcome == OUTCOME_ALREADY_TRIED:
            already.append(step)
        elif outcome in SKIP_REASONS:
            skipped[step] = SKIP_REASONS[outcome]
        else:
            walked.append(step)  # did_not_help, bank problem, fixed, relapsed (or an older tracker without outcome)
    return Record(walked, already, skipped)
