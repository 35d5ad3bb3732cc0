"""What a human specialist needs when the bot hands a conversation over.

``handoff_slots`` is the hook ``action_escalate`` calls: it records the summary (diagnosis, bank,
error code, check results, steps tried) and moves ``handoff_status`` to ``requested``. The hand-off
store and agent console pick the conversation up from there.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from actions import troubleshooting as ts

REQUESTED = "requested"


def build_summary(slots: Mapping[str, Any], reason: str, now: Optional[float] = None) -> Dict[str, Any]:
    steps: List[str] = list(slots.get("steps_tried") or [])
    outcomes: Dict[str, str] = dict(slots.get("step_outcomes") or {})
    remaining = ts.remaining_steps(slots.get("diagnosis"), steps)
    when = datetime.fromtimestamp(now, tz=timezone.utc) if now is not None else datetime.now(timezone.utc)
    return {
        "reason": reason,
        "diagnosis": slots.get("diagnosis"),
        "bank": slots.get("bank"),
        "bank_url": slots.get("bank_url"),
        "error_code": slots.get("error_code"),
        "browser": slots.get("browser"),
        "check_results": dict(slots.get("check_results") or {}),
        "steps_tried": steps,
        "step_outcomes": outcomes,
        "steps_remaining": remaining,
        "credential_answers": dict(slots.get("credential_answers") or {}),
        "requested_at": when.isoformat(timespec="seconds"),
    }


def handoff_slots(slots: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    """Slot values that open a hand-off for this conversation."""
    remaining = ts.remaining_steps(slots.get("diagnosis"), slots.get("steps_tried") or [])
    reason = "user_request" if remaining else "all_steps_tried"
    return {
        "handoff_status": REQUESTED,
        "escalation_summary": build_summary(slots, reason, now),
        "escalation_due": False,
    }


def summary_text(summary: Mapping[str, Any]) -> str:
    """One-paragraph plain-text summary for people (agent console, transcripts)."""
    parts = [f"Diagnosis: {summary.get('diagnosis') or 'unknown'}"]
    if summary.get("error_code"):
        parts.append(f"error code {summary['error_code']}")
    if summary.get("bank"):
        parts.append(f"bank {summary['bank']}")
    checks = summary.get("check_results") or {}
    for bank, result in checks.items():
        parts.append(f"site check {bank}: {result.get('status')} ({result.get('reason')})")
    parts.append(f"tried: {ts.describe_steps(summary.get('steps_tried') or [])}")
    if summary.get("steps_remaining"):
        parts.append(f"not yet tried: {ts.describe_steps(summary['steps_remaining'])}")
    return "; ".join(parts) + "."
