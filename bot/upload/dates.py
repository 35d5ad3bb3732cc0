"""Reads the dates banks write (03/04/2024, 2024-03-04, 04-Mar-2024, Mon 04/03/2024, 4 Mar 2024,
20240304, with or without a time) and works out the day/month order of a whole column.

A numeric date like ``03/04/2024`` has two readings; :func:`resolve_order` looks at the whole
column before choosing, and says so when it cannot (every date fits both orders).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from bot.upload.limits import MAX_TOKEN_CHARS

ORDERS = ("MDY", "DMY", "YMD")
ORDER_WORDS = {"MDY": "month/day/year", "DMY": "day/month/year", "YMD": "year/month/day"}

MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_WEEKDAY = re.compile(r"^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]{0,6}\.?,?\s*", re.IGNORECASE)
_TIME = re.compile(
    r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?\s*(?:[ap]\.?m\.?)?\s*(?:z|utc|gmt|[+-]\d{2}:?\d{2})?)$",
    re.IGNORECASE,
)
_NUMERIC = re.compile(r"^(\d{1,4})([/.\-])(\d{1,2})\2(\d{2,4})$")
_COMPACT = re.compile(r"^((?:19|20)\d{2})(\d{2})(\d{2})$")
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?[ \-/.]{0,3}([A-Za-z]{3,9})\.?[ \-/.,]{0,3}(\d{4}|\d{2})$")
_MONTH_DAY_YEAR = re.compile(r"^([A-Za-z]{3,9})\.?[ \-/.]{0,3}(\d{1,2})(?:st|nd|rd|th)?,?[ \-/.]{0,3}(\d{4}|\d{2})$")
_YEAR_MONTH_DAY = re.compile(r"^(\d{4})[ \-/.]{0,3}([A-Za-z]{3,9})\.?[ \-/.]{0,3}(\d{1,2})$")


@dataclass(frozen=True)
class DateCell:
    """One parsed date cell.

    ``fixed`` is set when the cell has one reading (year first, month name, 20240304). Otherwise
    ``a``/``b``/``year`` are the two leading numbers and the year of ``a/b/year`` and the reading
    depends on the column's order. ``style`` tells formats apart for the one-format rule.
    """

    text: str
    style: str
    fixed: Optional[dt.date] = None
    a: int = 0
    b: int = 0
    year: int = 0
    short_year: bool = False
    weekday: bool = False
    has_time: bool = False
    weekday_index: Optional[int] = None  # 0 = Monday, when the cell names its weekday

    @property
    def ambiguous(self) -> bool:
        return self.fixed is None and self.a != self.b and self.a <= 12 and self.b <= 12

    def reading(self, order: str) -> Optional[dt.date]:
        if self.fixed is not None:
            return self.fixed
        if order == "MDY":
            return _make(self.year, self.a, self.b)
        if order == "DMY":
            return _make(self.year, self.b, self.a)
        if order == "YMD" and self.short_year:
            # yy/mm/dd: the first number is the year, the last the day
            return _make(_expand_year(self.a), self.b, self.year % 100)
        return None


def _expand_year(y: int) -> int:
    if y >= 100:
        return y
    return 2000 + y if y < 70 else 1900 + y


def _make(year: int, month: int, day: int) -> Optional[dt.date]:
    if not 1900 <= year <= 2099:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _month(word: str) -> Optional[int]:
    w = word.lower()
    if w[:4] == "sept":
        return 9
    number = MONTHS.get(w[:3])
    if number is None:
        return None
    full = MONTH_NAMES[number - 1].lower()
    return number if full.startswith(w) or w in ("sept",) else None


def parse_date(text: object) -> Optional[DateCell]:
    """The date in a cell, or None. Never raises."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN_CHARS * 2:
        return None
    return _parse_date_cached(text)


@functools.lru_cache(maxsize=8192)
def _parse_date_cached(text: str) -> Optional[DateCell]:
    raw = text.strip()
    if not raw or len(raw) > MAX_TOKEN_CHARS:
        return None
    s = raw.replace("\u00a0", " ")
    weekday = False
    weekday_index = None
    m = _WEEKDAY.match(s)
    if m and m.end() < len(s) and not _month(s[:3]):
        weekday = True
        weekday_index = WEEKDAYS.index(s[:3].lower())
        s = s[m.end() :]
    has_time = False
    m = _TIME.search(s)
    if m and m.start() > 0:
        has_time = True
        s = s[: m.start()]
    s = s.strip()
    flags = ("W" if weekday else "") + ("T" if has_time else "")

    m = _NUMERIC.match(s)
    if m:
        first, sep, second, last = m.group(1), m.group(2), m.group(3), m.group(4)
        if len(first) == 4:  # 2024-03-04
            if len(last) > 2:
                return None
            day = _make(int(first), int(second), int(last))
            if day is None:
                return None
            return DateCell(raw, f"ymd{sep}{flags}", fixed=day, weekday=weekday, has_time=has_time)
        if len(first) == 3 or len(last) == 3:
            return None
        a, b = int(first), int(second)
        year = _expand_year(int(last))
        cell = DateCell(
            raw,
            f"num{sep}{len(last)}{flags}",
            a=a,
            b=b,
            year=year,
            short_year=len(last) == 2,
            weekday=weekday,
            has_time=has_time,
            weekday_index=weekday_index,
        )
        if cell.reading("MDY") is None and cell.reading("DMY") is None and cell.reading("YMD") is None:
            return None
        return cell
    m = _COMPACT.match(s)
    if m:
        day = _make(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return DateCell(raw, f"compact{flags}", fixed=day, weekday=weekday, has_time=has_time) if day else None
    for regex, kind in ((_DAY_MONTH_YEAR, "dmy"), (_MONTH_DAY_YEAR, "mdy"), (_YEAR_MONTH_DAY, "ymd")):
        m = regex.match(s)
        if not m:
            continue
        if kind == "dmy":
            day_s, month_s, year_s = m.group(1), m.group(2), m.group(3)
        elif kind == "mdy":
            month_s, day_s, year_s = m.group(1), m.group(2), m.group(3)
        else:
            year_s, month_s, day_s = m.group(1), m.group(2), m.group(3)
        month = _month(month_s)
        if month is None:
            return None
        day = _make(_expand_year(int(year_s)), month, int(day_s))
        if day is None:
            return None
        return DateCell(raw, f"name-{kind}{flags}", fixed=day, weekday=weekday, has_time=has_time)
    return None


def spoken(day: dt.date, order: str) -> str:
    """``March 4, 2024`` (month first) or ``4 March 2024`` (day first)."""
    if order == "DMY":
        return f"{day.day} {MONTH_NAMES[day.month - 1]} {day.year}"
    return f"{MONTH_NAMES[day.month - 1]} {day.day}, {day.year}"


@dataclass
class OrderDecision:
    """How a column's numeric dates are read."""

    order: Optional[str]  # None: cannot tell (ask the user) or no numeric dates at all
    ask: Optional[dict] = None  # the ``needs_date_order`` question
    note: Optional[str] = None  # how the order was chosen, in plain words
    overridden_hint: bool = False


def resolve_order(cells: Sequence[Tuple[int, DateCell]], hint: Optional[str]) -> OrderDecision:
    """Choose MDY/DMY/YMD for ``(row, cell)`` pairs. With a hint that fits, use it; otherwise
    infer from the cells that only fit one order; when every cell fits both, ask."""
    numeric = [(row, c) for row, c in cells if c.fixed is None]
    if not numeric:
        return OrderDecision(order=hint or "MDY")
    fits: Dict[str, int] = {o: sum(1 for _, c in numeric if c.reading(o)) for o in ORDERS}
    total = len(numeric)
    complete = [o for o in ("MDY", "DMY") if fits[o] == total]
    if hint in ORDERS and fits[hint] == total:
        return OrderDecision(order=hint)
    if hint in ORDERS and complete:
        # the user's answer contradicts a date that only has one reading
        order = complete[0]
        row, witness = _witness(numeric, order)
        return OrderDecision(
            order=order,
            overridden_hint=True,
            note=f"You said the dates are {ORDER_WORDS[hint]}, but row {row} has '{witness.text}', "
            f"which only works as {ORDER_WORDS[order]}, so I read them as {ORDER_WORDS[order]}.",
        )
    if len(complete) == 2:
        ambiguous = [(row, c) for row, c in numeric if c.ambiguous]
        if not ambiguous:
            return OrderDecision(order="MDY")  # e.g. every date is 05/05/2024: both readings agree
        named = [(row, c) for row, c in ambiguous if c.weekday_index is not None]
        if named and len(named) == len(ambiguous):
            agree = {o: sum(1 for _, c in named if c.reading(o).weekday() == c.weekday_index) for o in complete}
            best = [o for o in complete if agree[o] == len(named)]
            if len(best) == 1:
                row, c = named[0]
                return OrderDecision(
                    order=best[0],
                    note=f"Dates are {ORDER_WORDS[best[0]]}: the weekdays in front of them only match "
                    f"that way (row {row}: '{c.text}' is {spoken(c.reading(best[0]), best[0])}).",
                )
        row, example = ambiguous[0]
        mdy, dmy = example.reading("MDY"), example.reading("DMY")
        return OrderDecision(
            order=None,
            ask={
                "row": row,
                "example": example.text,
                "readings": {"MDY": mdy.isoformat(), "DMY": dmy.isoformat()},
                "question": f"Is {example.text} {spoken(mdy, 'MDY')} or {spoken(dmy, 'DMY')}?",
                "options": {"MDY": spoken(mdy, "MDY"), "DMY": spoken(dmy, "DMY")},
            },
        )
    if len(complete) == 1:
        order = complete[0]
        if hint in ORDERS:
            return OrderDecision(order=order)
        row, witness = _witness(numeric, order)
        return OrderDecision(
            order=order,
            note=f"Dates are {ORDER_WORDS[order]}: row {row} has '{witness.text}', which can only be "
            f"{spoken(witness.reading(order), order)}.",
        )
    # no order fits every date: take the user's, or the one that fits most; the rest are errors
    order = hint if hint in ORDERS else max(("MDY", "DMY"), key=lambda o: fits[o])
    return OrderDecision(order=order)


def _witness(numeric: Sequence[Tuple[int, DateCell]], order: str) -> Tuple[int, DateCell]:
    other = "DMY" if order == "MDY" else "MDY"
    for row, c in numeric:
        if c.reading(order) and not c.reading(other):
            return row, c
    return numeric[0]


def format_date(day: dt.date, order: str) -> str:
    """MM/DD/YYYY for ``MDY``, DD/MM/YYYY for ``DMY``."""
    if order == "DMY":
        return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def describe_style(cell: DateCell) -> str:
    """What is special about a date's format, for messages (empty when nothing is)."""
    if cell.weekday:
        return "has the day of the week in front"
    if cell.style.startswith("compact"):
        return "is written without separators"
    if cell.style.startswith("name-"):
        return "spells out the month"
    if cell.has_time:
        return "has a time after the date"
    return ""
