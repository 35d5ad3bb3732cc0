"""The last gate before a converted copy is offered: the copy, read back from its own bytes, must hold the same
transactions as the source file, read again here independently of the parser that made the copy.

* OFX/QFX/QBO: every ``<STMTTRN>`` in the raw bytes (outside investment statements), with its ``<TRNAMT>`` and
  ``<DTPOSTED>``, found by regular expressions, not by the SGML reader.
* CSV: the raw rows re-split with :mod:`csv`, the date and money cells of the columns the layout named read by
  this module's own small readers, with the file's stated sign convention (and any DR/CR column found here).

Compared: the number of transactions, money in, money out, and every (date, amount) pair. Rows the report
already names as left out (a total line, an unreadable amount) are listed, not hidden. Anything else that
differs means no copy: the report says what differs and what the customer can do.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from bot.upload.model import ConvertedFile, money

ZERO = Decimal("0")

#: Problem codes whose rows the report already says are not in the converted copy.
LEFT_OUT_CODES = {
    "pending",
    "not_transaction",
    "bad_amount",
    "zero_amount",
    "no_amount",
    "both_credit_debit",
    "column_count",
    "date_order_mismatch",
    "bad_date",
}


@dataclass(frozen=True)
class Item:
    """One transaction of the source: where it is (CSV row / OFX position), its date and signed amount."""

    where: int
    date: Optional[dt.date]
    amount: Optional[Decimal]


@dataclass
class SourceRead:
    items: List[Item] = field(default_factory=list)
    how: str = ""

    def totals(self, skip: Set[int] = frozenset()) -> Tuple[int, Decimal, Decimal]:
        amounts = [i.amount for i in self.items if i.where not in skip and i.amount is not None]
        return (
            sum(1 for i in self.items if i.where not in skip),
            sum((a for a in amounts if a > 0), ZERO),
            -sum((a for a in amounts if a < 0), ZERO),
        )

    def to_dict(self) -> dict:
        n, money_in, money_out = self.totals()
        return {"rows": n, "money_in": money(money_in), "money_out": money(money_out), "read": self.how}


@dataclass
class Verdict:
    passed: bool
    differences: List[str] = field(default_factory=list)
    left_out: List[int] = field(default_factory=list)
    copy_rows: int = 0
    copy_in: Decimal = ZERO
    copy_out: Decimal = ZERO

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "differences": self.differences,
            "left_out": self.left_out,
            "copy": {"rows": self.copy_rows, "money_in": money(self.copy_in), "money_out": money(self.copy_out)},
        }


# ---------------------------------------------------------------------------- numbers and dates, read here
_SIGN_WORD = re.compile(r"(?:^\s*(CR|DR)\.?(?![A-Za-z]))|(?:(?<![A-Za-z])(CR|DR)\.?\s*$)", re.IGNORECASE)


def read_number(text: str, decimal_sep: str = ".") -> Optional[Tuple[Decimal, bool, bool]]:
    """``(value, had_plus, had_sign_word)`` of a money cell: minus (leading, trailing, Unicode), parentheses
    and DR are money out, CR and "+" money in; currency symbols and letters are ignored."""
    s = (text or "").strip().replace("\u2212", "-").replace("\u2013", "-")
    if not s or len(s) > 128:
        return None
    negative = False
    word = _SIGN_WORD.search(s)
    if word:
        negative = (word.group(1) or word.group(2)).upper() == "DR"
        s = _SIGN_WORD.sub("", s)
    plus = "+" in s
    if "(" in s and ")" in s:
        negative = True
    digits = re.sub(r"[^\d.,'\- ]", "", s).strip()
    if digits.startswith("-") or digits.endswith("-"):
        negative = True
    digits = digits.replace("-", "").replace(" ", "").replace("'", "")
    if not re.search(r"\d", digits):
        return None
    seps = [c for c in digits if c in ".,"]
    if seps:
        last = max(digits.rfind("."), digits.rfind(","))
        tail = digits[last + 1 :]
        if len(set(seps)) == 2 or (len(seps) == 1 and len(tail) != 3) or (len(seps) == 1 and digits[last] == decimal_sep):
            whole, frac = digits[:last], tail
        else:
            whole, frac = digits, ""
        whole = whole.replace(".", "").replace(",", "")
        digits = f"{whole or '0'}.{frac or '0'}"
    try:
        value = Decimal(digits)
    except InvalidOperation:
        return None
    return (-value if negative else value), plus, bool(word)


_MONTHS = {
    m: n for n, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)
}
_TIME_TAIL = re.compile(r"[ T]\d{1,2}:\d{2}.*$")


def _year(y: int) -> int:
    return y if y >= 100 else (2000 + y if y < 70 else 1900 + y)


def _date(y: int, m: int, d: int) -> Optional[dt.date]:
    try:
        return dt.date(_year(y), m, d)
    except ValueError:
        return None


def read_date(text: str, order: Optional[str]) -> Optional[dt.date]:
    """A date cell in the file's order (``MDY``/``DMY``/``YMD``); year-first and month-name dates need none."""
    s = _TIME_TAIL.sub("", (text or "").strip())[:64]
    words = [w for w in re.findall(r"[A-Za-z]+", s) if w.lower() not in ("st", "nd", "rd", "th")]
    numbers = [int(n) for n in re.findall(r"\d+", s)]
    lengths = [len(n) for n in re.findall(r"\d+", s)]
    months = [_MONTHS[w[:3].lower()] for w in words if w[:3].lower() in _MONTHS]
    if len(numbers) == 1 and lengths[0] == 8:
        n = str(numbers[0])
        return _date(int(n[:4]), int(n[4:6]), int(n[6:]))
    if months and len(numbers) == 2:
        if lengths[0] == 4:
            return _date(numbers[0], months[0], numbers[1])
        return _date(numbers[1], months[0], numbers[0])
    if len(numbers) != 3 or words and not all(w[:3].lower() in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") for w in words):
        return None
    a, b, c = numbers
    if lengths[0] == 4:
        return _date(a, b, c)
    if order == "DMY":
        return _date(c, b, a)
    if order == "YMD":
        return _date(a, b, c)
    return _date(c, a, b)


# ---------------------------------------------------------------------------- OFX
_STMTTRN = re.compile(rb"<\s*STMTTRN\s*>", re.IGNORECASE)
_END = re.compile(rb"<\s*/\s*(?:STMTTRN|BANKTRANLIST)\s*>", re.IGNORECASE)
_INVEST = re.compile(rb"<\s*INVSTMTRS\s*>.*?(?:<\s*/\s*INVSTMTRS\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_TRNAMT = re.compile(rb"<\s*TRNAMT\s*>\s*([^<\s]*)", re.IGNORECASE)
_DTPOSTED = re.compile(rb"<\s*DTPOSTED\s*>\s*(\d{8})", re.IGNORECASE)


def read_ofx(data: bytes) -> SourceRead:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:200].count(b"\x00") > 50:
        data = data.decode(
            "utf-16-le" if data[1:2] == b"\x00" or data[:2] == b"\xff\xfe" else "utf-16-be", errors="replace"
        ).encode("utf-8")
    data = _INVEST.sub(b"", data)
    out = SourceRead(how="every <STMTTRN> in the file, with its <TRNAMT> and <DTPOSTED>")
    parts = _STMTTRN.split(data)[1:]
    for n, part in enumerate(parts, start=1):
        end = _END.search(part)
        block = part[: end.start()] if end else part
        amount = None
        m = _TRNAMT.search(block)
        if m:
            raw = (
                m.group(1).decode("ascii", "replace").replace(",", ".")
                if b"." not in m.group(1)
                else m.group(1).decode("ascii", "replace")
            )
            try:
                amount = Decimal(raw.replace("+", ""))
            except InvalidOperation:
                amount = None
        d = _DTPOSTED.search(block)
        day = None
        if d:
            text = d.group(1).decode()
            day = _date(int(text[:4]), int(text[4:6]), int(text[6:]))
        out.items.append(Item(n, day, amount))
    return out


# ---------------------------------------------------------------------------- CSV
_MARKER_OUT = {"dr", "debit", "af", "soll", "debet"}
_MARKER_IN = {"cr", "credit", "bij", "haben"}


def read_csv(
    text: str,
    *,
    delimiter: str,
    header_row: Optional[int],
    date_col: int,
    amount_col: Optional[int],
    debit_col: Optional[int],
    credit_col: Optional[int],
    marker_col: Optional[int],
    text_cols: Iterable[int],
    order: Optional[str],
    decimal_sep: str,
    flip: bool = False,
    plus_in: bool = False,
    marker_out: Iterable[str] = (),
    marker_in: Iterable[str] = (),
    amount_alt: Optional[int] = None,
) -> SourceRead:
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False))
    numbered = [(n, r) for n, r in enumerate(rows, start=1) if header_row is None or n > header_row]
    numbered = [(n, r) for n, r in numbered if any(c.strip() for c in r)]
    out = SourceRead(how="every row below the headings with a date and an amount, read again from the raw file")
    skip = {date_col, amount_col, amount_alt, *text_cols}
    marker_out, marker_in = set(marker_out) or _MARKER_OUT, set(marker_in) or _MARKER_IN
    if marker_col is None and amount_col is not None:
        headings = rows[header_row - 1] if header_row and header_row <= len(rows) else None
        marker_col = _find_marker(numbered, skip, date_col, headings)

    def cell(r: Sequence[str], i: Optional[int]) -> str:
        return r[i] if i is not None and i < len(r) else ""

    def amount_of(r: Sequence[str]) -> Tuple[bool, Optional[Decimal]]:
        cells = [cell(r, i) for i in (amount_col, amount_alt, debit_col, credit_col) if i is not None]
        if not any(c.strip() for c in cells):
            return False, None
        if amount_col is not None:
            column = amount_col if cell(r, amount_col).strip() or amount_alt is None else amount_alt
            got = read_number(cell(r, column), decimal_sep)
            if got is None:
                return True, None
            value, plus, worded = got
            if marker_col is not None and not worded:
                word = re.sub(r"[^a-z]", "", cell(r, marker_col).lower())
                if word in marker_out:
                    return True, -abs(value)
                if word in marker_in:
                    return True, abs(value)
            if flip:
                value = -value
            elif plus_in and not plus:
                value = -abs(value)
            return True, value
        debit = read_number(cell(r, debit_col), decimal_sep) if cell(r, debit_col).strip() else None
        credit = read_number(cell(r, credit_col), decimal_sep) if cell(r, credit_col).strip() else None
        if (cell(r, debit_col).strip() and debit is None) or (cell(r, credit_col).strip() and credit is None):
            return True, None
        return True, (credit[0] if credit else ZERO) - (abs(debit[0]) if debit else ZERO)

    n = 0
    while n < len(numbered):
        where, r = numbered[n]
        n += 1
        date_text = cell(r, date_col).strip()
        day = read_date(date_text, order) if date_text else None
        if day is None:
            continue  # a note, a total, the rest of a description: not a transaction of its own
        has, value = amount_of(r)
        if not has and n < len(numbered):
            nxt_where, nxt = numbered[n]
            if nxt_where == where + 1 and not cell(nxt, date_col).strip():
                has, value = amount_of(nxt)
                if has:
                    n += 1
        if not has or value == 0:
            continue
        out.items.append(Item(where, day, value))
    return out


def _find_marker(numbered, skip, date_col, headings: Optional[Sequence[str]]) -> Optional[int]:
    """A column of only DR/CR (Debit/Credit, Af/Bij, Soll/Haben) words: both kinds, or DR alone under a blank
    heading (or with no heading row at all)."""
    width = max((len(r) for _, r in numbered), default=0)
    for i in range(width):
        if i in skip:
            continue
        words = {
            re.sub(r"[^a-z]", "", (r[i] if i < len(r) else "").lower())
            for _, r in numbered
            if (r[date_col] if date_col < len(r) else "").strip()
        } - {""}
        if not words or not words <= (_MARKER_OUT | _MARKER_IN) or not words & _MARKER_OUT:
            continue
        blank = headings is None or i >= len(headings) or not headings[i].strip()
        if words & _MARKER_IN or blank:
            return i
    return None


# ---------------------------------------------------------------------------- the copy, read back
def read_copy(files: Sequence[ConvertedFile], output_order: str) -> List[Tuple[Optional[dt.date], Decimal]]:
    out = []
    for f in files:
        rows = list(csv.reader(io.StringIO(f.content.decode("utf-8"))))
        for date_text, _desc, amount in rows[1:]:
            out.append((read_date(date_text, output_order), Decimal(amount)))
    return out


def compare(
    source: SourceRead,
    files: Sequence[ConvertedFile],
    output_order: str,
    *,
    left_out: Set[int] = frozenset(),
    after: Optional[dt.date] = None,
    noun: str = "transactions",
) -> Verdict:
    """The copy ``files`` against ``source`` minus the ``left_out`` positions (and, for a "new only" copy,
    minus everything on or before ``after``)."""
    expected = [i for i in source.items if i.where not in left_out and (after is None or (i.date and i.date > after))]
    got = read_copy(files, output_order)
    verdict = Verdict(passed=True, left_out=sorted(i.where for i in source.items if i.where in left_out))
    verdict.copy_rows = len(got)
    verdict.copy_in = sum((a for _, a in got if a > 0), ZERO)
    verdict.copy_out = -sum((a for _, a in got if a < 0), ZERO)
    want_in = sum((i.amount for i in expected if i.amount is not None and i.amount > 0), ZERO)
    want_out = -sum((i.amount for i in expected if i.amount is not None and i.amount < 0), ZERO)
    diffs = verdict.differences
    if len(got) != len(expected):
        diffs.append(f"the copy has {len(got)} {noun} but your file has {len(expected)}")
    if verdict.copy_in != want_in:
        diffs.append(f"money in is {money(verdict.copy_in)} in the copy but {money(want_in)} in your file")
    if verdict.copy_out != want_out:
        diffs.append(f"money out is {money(verdict.copy_out)} in the copy but {money(want_out)} in your file")
    if not diffs:
        unreadable = [i for i in expected if i.amount is None or i.date is None]
        if unreadable:
            diffs.append(
                f"I couldn't check {len(unreadable)} of your file's {noun} myself (first at "
                f"{'row' if noun == 'rows' else 'transaction'} {unreadable[0].where})"
            )
        else:
            want = Counter((i.date, i.amount) for i in expected)
            have = Counter(got)
            missing = want - have
            if missing:
                (day, amount), _ = next(iter(missing.items()))
                where = next(i.where for i in expected if (i.date, i.amount) == (day, amount))
                diffs.append(
                    f"{sum(missing.values())} {noun} have a different date in the copy (the first is "
                    f"{'row' if noun == 'rows' else 'transaction'} {where}: {day.isoformat()}, "
                    f"{money(amount)})"
                )
    verdict.passed = not diffs
    return verdict
