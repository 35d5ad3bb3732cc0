"""Reads money amounts the way banks write them; writes them the way QuickBooks wants them.

Understood: currency symbols and codes ($ £ € ¥ CAD USD C$ ...), parentheses for negatives,
leading / trailing minus (also the Unicode minus), a plus sign, "CR"/"DR" suffixes, thousands
separators (1,234.56  1.234,56  1 234,56  1'234.56) and a decimal comma.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import FrozenSet, Iterable, Optional

from bot.upload.limits import MAX_TOKEN_CHARS

CENT = Decimal("0.01")
#: Larger than any bank transaction: such a "number" is an account number or junk.
MAX_ABS = Decimal("1000000000000")

_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ", "\t": " "})
_MINUS = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"})
_CURRENCY = re.compile(
    r"^(?:US\$|CA\$|C\$|CAD\$|AU\$|A\$|NZ\$|HK\$|CDN\$|USD|CAD|GBP|EUR|AUD|NZD|CHF|JPY|[$£€¥₹])",
    re.IGNORECASE,
)
_CURRENCY_END = re.compile(
    r"(?:USD|CAD|GBP|EUR|AUD|NZD|CHF|JPY|[$£€¥₹])$",
    re.IGNORECASE,
)
_CRDR = re.compile(r"(?:\s*)(CR|DR|Cr|Dr|cr|dr)\.?$")
_CRDR_START = re.compile(r"^(CR|DR|Cr|Dr|cr|dr)\.?(?=[\s\d$£€(+-])\s*")
_CORE = re.compile(r"^(?:\d[\d.,' ]*|[.,]\d+)$")

#: Flags a parse can carry (QuickBooks-rule checks turn them into problems).
CURRENCY = "currency"
PARENTHESES = "parentheses"
TRAILING_MINUS = "trailing_minus"
CR = "cr"
DR = "dr"
PLUS = "plus"
GROUPING = "grouping"
DECIMAL_COMMA = "decimal_comma"
MANY_DECIMALS = "many_decimals"


@dataclass(frozen=True)
class Amount:
    value: Decimal
    flags: FrozenSet[str] = field(default_factory=frozenset)

    @property
    def is_zero(self) -> bool:
        return self.value == 0


def _strip_decorations(s: str):
    """Peel currency, signs, parentheses and CR/DR off ``s``: (core, negative_marks, flags)."""
    flags = set()
    negatives = 0
    m = _CRDR.search(s)
    if m and len(s) > len(m.group(0)):
        flags.add(CR if m.group(1).lower() == "cr" else DR)
        s = s[: m.start()]
    else:
        m = _CRDR_START.match(s)
        if m and len(s) > m.end():
            flags.add(CR if m.group(1).lower() == "cr" else DR)
            s = s[m.end() :]
    for _ in range(8):
        before = s
        s = s.strip()
        if not s:
            break
        if s[0] == "(" and s[-1] == ")":
            flags.add(PARENTHESES)
            negatives += 1
            s = s[1:-1]
            continue
        m = _CURRENCY.match(s)
        if m:
            flags.add(CURRENCY)
            s = s[m.end() :]
            continue
        m = _CURRENCY_END.search(s)
        if m and m.start() > 0:
            flags.add(CURRENCY)
            s = s[: m.start()]
            continue
        if s[0] == "-":
            negatives += 1
            s = s[1:]
            continue
        if s[0] == "+":
            flags.add(PLUS)
            s = s[1:]
            continue
        if s[-1] == "-":
            flags.add(TRAILING_MINUS)
            negatives += 1
            s = s[:-1]
            continue
        if s == before:
            break
    return s.strip(), negatives, flags


def _grouped(integer: str, sep: str) -> bool:
    """``1,234,567`` style: first group 1-3 digits, the rest exactly 3."""
    parts = integer.split(sep)
    return 1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:]) and all(p.isdigit() for p in parts)


def _core_value(core: str, decimal_sep: str):
    """Decimal value of a bare number with separators, and flags; None when it isn't one."""
    flags = set()
    if not _CORE.match(core):
        return None
    if " " in core and not re.fullmatch(r"\d{1,3}(?: \d{3})+(?:[.,]\d+)?", core):
        return None
    if "'" in core and not re.fullmatch(r"\d{1,3}(?:'\d{3})+(?:[.,]\d+)?", core):
        return None
    body = core.replace(" ", "").replace("'", "")
    if body != core:
        flags.add(GROUPING)
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        decimal_char = "." if body.rfind(".") > body.rfind(",") else ","
    elif dots or commas:
        sep = "." if dots else ","
        count = dots or commas
        tail = body.rsplit(sep, 1)[1]
        if count > 1:
            decimal_char = None  # 1,234,567 or 1.234.567: grouping only
        elif len(tail) == 3 and body.index(sep) > 0:
            # 1,234 or 1.234: grouping unless the file's own decimal mark is this character
            decimal_char = sep if decimal_sep == sep else None
            if decimal_char is None and not _grouped(body, sep):
                decimal_char = sep
        else:
            decimal_char = sep
    else:
        decimal_char = None
    if decimal_char is None:
        integer, fraction = body, ""
    else:
        integer, _, fraction = body.rpartition(decimal_char)
        if not fraction.isdigit():
            return None
    grouping_char = {".": ",", ",": "."}.get(decimal_char or "", None)
    if decimal_char is None:
        grouping_char = "." if dots else ("," if commas else None)
    if grouping_char and grouping_char in integer:
        if not _grouped(integer, grouping_char):
            return None
        flags.add(GROUPING)
        integer = integer.replace(grouping_char, "")
    if integer and not integer.isdigit():
        return None
    if decimal_char == ",":
        flags.add(DECIMAL_COMMA)
    if len(fraction) > 2 and fraction.rstrip("0")[2:]:
        flags.add(MANY_DECIMALS)
    try:
        value = Decimal(f"{integer or '0'}.{fraction or '0'}")
    except InvalidOperation:  # pragma: no cover (digits only by now)
        return None
    return value, flags


def parse_amount(text: object, decimal_sep: str = ".") -> Optional[Amount]:
    if not isinstance(text, str) or len(text) > MAX_TOKEN_CHARS * 2:
        return None
    return _parse_amount_cached(text, decimal_sep)


@functools.lru_cache(maxsize=8192)
def _parse_amount_cached(text: str, decimal_sep: str) -> Optional[Amount]:
    """The amount in ``text``; None when it isn't a readable amount. Blank cells are None too.

    ``decimal_sep`` is the file's decimal mark ("." or ","): it only decides numbers like
    ``1,234`` / ``1.234`` whose reading depends on it.
    """
    if not isinstance(text, str):
        return None
    s = text.translate(_SPACES).translate(_MINUS).strip()
    if not s or len(s) > MAX_TOKEN_CHARS:
        return None
    core, negatives, flags = _strip_decorations(s)
    if negatives > 1 or not core:
        return None
    parsed = _core_value(core, decimal_sep)
    if parsed is None:
        return None
    value, more = parsed
    flags |= more
    if value >= MAX_ABS:
        return None
    if DR in flags:
        value = -value
    elif negatives:
        value = -value
    if CR in flags and negatives:
        return None
    if value == 0:
        value = Decimal("0")  # no "-0"
    return Amount(value=value, flags=frozenset(flags))


def guess_decimal_separator(cells: Iterable[str]) -> str:
    """ "," when the file's amounts mostly use a decimal comma (1.234,56 / 12,50), else "."."""
    comma = dot = 0
    for n, raw in enumerate(cells):
        if n >= 20_000:
            break
        if not raw or len(raw) > MAX_TOKEN_CHARS:
            continue
        s = raw.translate(_SPACES).strip()
        core, _, _ = _strip_decorations(s)
        if not core or not _CORE.match(core):
            continue
        last_dot, last_comma = core.rfind("."), core.rfind(",")
        if last_dot >= 0 and last_comma >= 0:
            if last_comma > last_dot:
                comma += 1
            else:
                dot += 1
        elif last_comma >= 0 and re.search(r",\d{1,2}$", core):
            comma += 1
        elif last_dot >= 0 and re.search(r"\.\d{1,2}$", core):
            dot += 1
    return "," if comma > dot else "."


def format_amount(value: Decimal) -> str:
    """``-1234.56``: two decimals, no symbols, no thousands separators, minus for money out."""
    q = value.quantize(CENT, rounding=ROUND_HALF_UP)
    if q == 0:
        q = Decimal("0.00")
    return f"{q:.2f}"


def describe(text: str) -> str:
    """A cell quoted for a message, kept short."""
    text = text.strip()
    return "'" + (text if len(text) <= 40 else text[:37] + "...") + "'"
