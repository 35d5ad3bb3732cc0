"""What a human specialist needs when the bot hands a conversation over.

``handoff_slots`` is the hook ``action_escalate`` calls: it records the summary (diagnosis, bank,
error code, check results, and the honest record of the steps: walked through, already tried by the
customer, skipped and why, plus the credential check's answers) and moves ``handoff_status`` to
``requested``. The ticket store and the agent console pick the conversation up from there.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from bot.troubleshooting import credential_check as cc
from bot.troubleshooting import steps as ts

REQUESTED = "requested"

#: Why the conversation was handed over, as the ticket says it.
REASONS = {
    "user_request": "the customer asked for a person",
    "all_steps_tried": "every fix was tried",
    "no_fix_left": "no fix that could help is left",
    "still_failing_after_a_day": "still failing after waiting a day",
    "relapsed_after_every_step": "it broke again after every fix was tried",
}

#: The credential check's answers as the specialist reads them (question -> (yes, no)).
CREDENTIAL_WORDING = {
    cc.LOGIN_WORKS: ("can sign in on the bank's site", "cannot sign in on the bank's site"),
    cc.SAME_USER_ID: ("same user ID in QuickBooks", "user ID in QuickBooks differs or not sure"),
    cc.PASSWORD_CHANGED: ("bank password changed recently", "bank password not changed recently"),
    cc.THIRD_PARTY_ACCESS: ("third-party access for QuickBooks is on", "third-party access off or not found"),
    cc.NEW_ACCOUNT: ("new account", "not a new account"),
}


def credential_findings(answers: Mapping[str, Any]) -> List[str]:
    """The credential check's answers in words, in the order they were asked."""
    return [CREDENTIAL_WORDING[q][0 if answers[q] else 1] for q in cc.QUESTIONS if isinstance(answers.get(q), bool)]


def build_summary(slots: Mapping[str, Any], reason: str, now: Optional[float] = None) -> Dict[str, Any]:
    steps: List[str] = list(slots.get("steps_tried") or [])
    outcomes: Dict[str, str] = dict(slots.get("step_outcomes") or {})
    record = ts.record(steps, outcomes)
    remaining = ts.remaining_steps(slots.get("diagnosis"), steps)
    when = datetime.fromtimestamp(now, tz=timezone.utc) if now is not None else datetime.now(timezone.utc)
    answers = {k: v for k, v in dict(slots.get("credential_answers") or {}).items() if k != cc.ADVICE_GIVEN}
    wait = dict(slots.get("wait_day") or {})
    return {
        "reason": reason,
        "diagnosis": slots.get("diagnosis"),
        "bank": slots.get("bank"),
        "bank_url": slots.get("bank_url"),
        "error_code": slots.get("error_code"),
        "browser": slots.get("browser"),
        "check_results": dict(slots.get("check_results") or {}),
        # what somebody actually did (walked through here, or tried before): the ticket's "steps tried"
        "steps_tried": record.tried,
        **record.to_dict(),
        "step_outcomes": outcomes,
        "steps_remaining": remaining,
        "credential_answers": answers,
        "credential_findings": credential_findings(answers),
        **({"wait_choice": wait["choice"]} if wait.get("choice") else {}),
        "requested_at": when.isoformat(timespec="seconds"),
    }


def handoff_slots(slots: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    """Slot values that open a hand-off for this conversation. The reason is the one the
    troubleshooter recorded (``escalation_reason``); older trackers without it fall back to what
    the steps say."""
    reason = slots.get("escalation_reason")
    if reason not in REASONS:
        remaining = ts.remaining_steps(slots.get("diagnosis"), slots.get("steps_tried") or [])
        record = ts.record(slots.get("steps_tried") or [], slots.get("step_outcomes") or {})
        reason = "user_request" if remaining else ("all_steps_tried" if not record.skipped else "no_fix_left")
    return {
        "handoff_status": REQUESTED,
        "escalation_summary": build_summary(slots, reason, now),
        "escalation_due": False,
    }


def summary_text(summary: Mapping[str, Any]) -> str:
    """One-paragraph plain-text summary for people (agent console, transcripts): exactly what was
    walked through, what the customer had already tried, and what was skipped and why."""
    parts = [f"Diagnosis: {summary.get('diagnosis') or 'unknown'}"]
    if summary.get("error_code"):
        parts.append(f"error code {summary['error_code']}")
    if summary.get("bank"):
        parts.append(f"bank {summary['bank']}")
    if summary.get("reason"):
        parts.append(f"handed over because {REASONS.get(summary['reason'], summary['reason'])}")
    checks = summary.get("check_results") or {}
    for bank, result in checks.items():
        parts.append(f"site check {bank}: {result.get('status')} ({result.get('reason')})")
    if "steps_walked" in summary:
        record = ts.Record(
            list(summary.get("steps_walked") or []),
            list(summary.get("steps_already_tried") or []),
            dict(summary.get("steps_skipped") or {}),
        )
        parts.append(f"walked through: {ts.describe_steps(record.walked)}")
        if record.already_tried:
            parts.append(f"customer had already tried: {ts.describe_steps(record.already_tried)}")
        for step, why in record.skipped.items():
            parts.append(f"skipped {ts.STEP_TITLES.get(step, step)} ({why})")
    else:  # a summary stored before the record was split
        parts.append(f"tried: {ts.describe_steps(summary.get('steps_tried') or [])}")
    if summary.get("credential_findings"):
        parts.append(f"sign-in check: {', '.join(summary['credential_findings'])}")
    if summary.get("wait_choice"):
        parts.append(
            {"reminder": "waited a day after a reminder", "person": "chose a person instead of waiting a day"}.get(
                summary["wait_choice"], summary["wait_choice"]
            )
        )
    if summary.get("steps_remaining"):
        parts.append(f"not yet tried: {ts.describe_steps(summary['steps_remaining'])}")
    return "; ".join(parts) + "."
