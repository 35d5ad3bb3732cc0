"""Which amounts are money out: the file's sign convention, decided once per file and stated in the report.

Conventions: ``signed`` (a minus, parentheses or trailing minus means money out), ``debit_credit`` (separate
money-out / money-in columns), ``marker_column`` (a DR/CR, Debit/Credit, Af/Bij or S/H column beside unsigned
amounts), ``marker_suffix`` (``12.50 DR`` / ``CR 100.00`` in the amount itself), ``plus_in`` ("+" marks money
in and the unsigned amounts are money out), ``card_positive`` (a card export listing purchases as positive
numbers and payments as negative ones: every sign is turned round), ``unsigned`` (every amount is positive and
nothing says which are money out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import List, Optional, Sequence, Tuple

from bot.upload import amounts as am

SIGNED, DEBIT_CREDIT, MARKER_COLUMN, MARKER_SUFFIX = "signed", "debit_credit", "marker_column", "marker_suffix"
PLUS_IN, CARD_POSITIVE, UNSIGNED = "plus_in", "card_positive", "unsigned"

#: Descriptions only a card statement has: the customer paying the card off.
CARD_PAYMENT = re.compile(r"thank\s*you|payment\s+received|paiement\s+re[cç]u|pago\s+recibido|zahlung\s+erhalten", re.IGNORECASE)
PAYMENT_WORD = re.compile(r"\b(payment|pymt|pmt|autopay|repayment|paiement|pago|zahlung)\b", re.IGNORECASE)
CARD_WORDS = re.compile(r"card|amex|american express|visa|mastercard|discover|kreditkarte|carte|tarjeta", re.IGNORECASE)


@dataclass(frozen=True)
class Convention:
    code: str
    text: str  # what the report says, in plain words
    flip: bool = False  # card_positive: every amount's sign is turned round
    plus_in: bool = False  # plus_in: unsigned amounts are money out

    def to_dict(self) -> dict:
        return {"code": self.code, "description": self.text}


def _is_card_file(headers: Sequence[str], filename: str) -> bool:
    return any(CARD_WORDS.search(h or "") for h in headers) or bool(CARD_WORDS.search(filename or ""))


def detect(
    rows: Sequence[Tuple[Decimal, frozenset, str]],
    *,
    headers: Sequence[str],
    filename: str,
    debit_credit: Optional[Tuple[str, str]] = None,
    marker: Optional[str] = None,
) -> Convention:
    """``rows``: (amount as read, parse flags, description) of every readable transaction row."""
    if debit_credit:
        out_name, in_name = debit_credit
        return Convention(DEBIT_CREDIT, f"'{out_name}' is money out and '{in_name}' is money in.")
    if marker:
        return Convention(
            MARKER_COLUMN,
            f"The amounts have no sign; the '{marker}' column says which are money out "
            "(DR/Debit) and which are money in (CR/Credit).",
        )
    if not rows:
        return Convention(SIGNED, "Negative amounts are money out.")
    flags = [f for _, f, _ in rows]
    if any(am.CR in f or am.DR in f for f in flags):
        return Convention(MARKER_SUFFIX, "Amounts marked DR are money out and amounts marked CR are money in.")
    negative = [a for a, _, _ in rows if a < 0]
    plus = [f for f in flags if am.PLUS in f]
    if plus and not negative:
        return Convention(PLUS_IN, "Amounts with a '+' are money in; the amounts without a sign are money out.", plus_in=True)
    card = _is_card_file(headers, filename)
    payments = [(a, d) for a, _, d in rows if CARD_PAYMENT.search(d) or (card and PAYMENT_WORD.search(d))]
    others = [a for a, _, d in rows if not (CARD_PAYMENT.search(d) or (card and PAYMENT_WORD.search(d)))]
    if payments and all(a < 0 for a, _ in payments) and others and sum(1 for a in others if a > 0) > len(others) / 2:
        example = payments[0][1][:40]
        return Convention(
            CARD_POSITIVE,
            "This is a credit-card export that lists purchases as positive numbers and "
            f"payments as negative ones ('{example}'); I made purchases money out and payments money "
            "in.",
            flip=True,
        )
    if card and not negative and len(rows) >= 2:
        return Convention(
            CARD_POSITIVE,
            "This is a credit-card export and every amount is positive: I took them "
            "as purchases (money out). If some are payments or refunds, fix their sign.",
            flip=True,
        )
    if not negative:
        return Convention(
            UNSIGNED,
            "Every amount is positive and nothing in the file says which are money out, so "
            "I kept them all as money in. If some are payments, the file needs a minus sign "
            "on them (or a Debit/Credit column).",
        )
    return Convention(SIGNED, "Negative amounts are money out, positive ones money in.")


def apply(convention: Convention, value: Decimal, flags: frozenset) -> Decimal:
    """The signed amount (negative = money out) under ``convention``."""
    if convention.flip:
        return -value
    if convention.plus_in and am.PLUS not in flags:
        return -abs(value)
    return value


def summary_line(convention: Convention) -> List[str]:
    return [convention.text]
