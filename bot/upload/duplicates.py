"""Rows that may already be in QuickBooks (on or before the last booked date), and rows that are
exact copies of another row in the same file."""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Optional, Sequence

from bot.upload.model import WARNING, Problem, Transaction


def ranges(numbers: Sequence[int]) -> str:
    """``2-9, 12 and 15``."""
    nums = sorted(set(numbers))
    parts: List[str] = []
    start = prev = None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else str(start))
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if parts else ""


def already_booked(transactions: Sequence[Transaction], last_booked: Optional[dt.date], noun: str = "rows"):
    """(problem or None, transactions after ``last_booked``)."""
    if last_booked is None:
        return None, list(transactions)
    old = [t for t in transactions if t.date <= last_booked]
    fresh = [t for t in transactions if t.date > last_booked]
    if not old:
        return None, fresh
    many = len(old) > 1
    label = noun if many else noun.rstrip("s")
    verb = "are" if many else "is"
    message = (
        f"{label.capitalize()} {ranges([t.row for t in old])} {verb} on or before {last_booked.isoformat()} "
        f"(the last transaction already in QuickBooks) and may already be there."
    )
    if fresh:
        message += " I made a version without them."
    else:
        message += " Nothing in this file is newer, so there may be nothing to upload."
    return Problem(old[0].row, WARNING, message, "already_booked"), fresh


def exact_copies(transactions: Sequence[Transaction]) -> List[Problem]:
    seen: Dict[tuple, int] = {}
    out: List[Problem] = []
    for t in transactions:
        key = t.key or (t.date, t.description, t.amount)
        if key in seen:
            out.append(
                Problem(
                    t.row,
                    WARNING,
                    f"Row {t.row} is an exact copy of row {seen[key]}. If it isn't a real "
                    "repeat (two identical purchases), delete one of them.",
                    "duplicate_row",
                )
            )
        else:
            seen[key] = t.row
    return out
