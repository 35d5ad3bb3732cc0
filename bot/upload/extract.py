"""Turns a CSV table into transactions: finds the layout, reads every row, and says which rows
could not be used and why (those rows are left out of the converted file)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, Optional

from bot.upload import columns as cols
from bot.upload import signs
from bot.upload.amounts import Amount, describe, guess_decimal_separator, parse_amount
from bot.upload.csv_reader import Record, Table
from bot.upload.dates import ORDER_WORDS, DateCell, OrderDecision, parse_date, resolve_order, spoken
from bot.upload.limits import MAX_DESCRIPTION_CHARS
from bot.upload.model import ERROR, INFO, WARNING, Problem, Transaction

SUMMARY_WORDS = re.compile(
    r"\b(total|totals|balance|opening|closing|beginning|ending|summary|statement|brought forward|"
    r"carried forward|end of|page \d|subtotal|net change)\b",
    re.IGNORECASE,
)
LEFT_OUT = " Left out of the converted file."
FORMULA_START = ("=", "+", "-", "@")


@dataclass
class RowInfo:
    """A row that has a readable date: its cells as found, and what was read from them."""

    record: Record
    date: DateCell
    cells: Dict[str, str] = field(default_factory=dict)  # role -> raw cell text
    amounts: Dict[str, Optional[Amount]] = field(default_factory=dict)  # role -> parsed
    description: str = ""
    amount: Optional[Decimal] = None  # signed, None when the row can't be used
    usable: bool = True


@dataclass
class Extraction:
    layout: cols.Layout
    decimal_sep: str = "."
    preamble: List[Record] = field(default_factory=list)
    blank_rows: List[int] = field(default_factory=list)
    not_transactions: List[Record] = field(default_factory=list)
    rows: List[RowInfo] = field(default_factory=list)
    short_rows: List[Record] = field(default_factory=list)
    order: Optional[OrderDecision] = None
    transactions: List[Transaction] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    fatal: bool = False  # no date or no amount column: nothing can be converted
    convention: Optional[signs.Convention] = None
    joined: List[tuple] = field(default_factory=list)  # (first row, second row) of two-line transactions
    date_reason: str = ""  # why the dates were read in this order, in plain words


def clean_text(text: str) -> str:
    """One line of printable text: control characters and runs of spaces collapsed."""
    if text.isprintable():
        return re.sub(r" {2,}", " ", text).strip()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        out.append(" " if cat[0] in ("C", "Z") else ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _cell(rec: Record, i: Optional[int]) -> str:
    if i is None or i >= len(rec.cells):
        return ""
    return rec.cells[i]


#: Regions whose banks write the day first (evidence for dates that read both ways).
DAY_FIRST_REGIONS = {
    "UK",
    "IE",
    "AU",
    "NZ",
    "DE",
    "AT",
    "CH",
    "FR",
    "BE",
    "NL",
    "LU",
    "ES",
    "PT",
    "IT",
    "IN",
    "SG",
    "ZA",
    "BR",
    "HK",
    "MY",
    "DK",
    "NO",
    "SE",
    "FI",
    "PL",
    "CZ",
    "IL",
}
REGION_NAMES = {"UK": "the UK", "IE": "Ireland", "AU": "Australia", "NZ": "New Zealand", "NL": "the Netherlands"}


def extract(table: Table, date_order: Optional[str], *, filename: str = "", region: str = "US") -> Extraction:
    records = table.records
    header = cols.find_header(records)
    if header is not None:
        after = [r for r in records if r.row > header.row]
        layout = cols.layout_from_header(header, [r for r in after if not r.blank])
        region_rows = after
        before = [r for r in records if r.row < header.row]
    else:
        layout = cols.layout_from_content(records)
        region_rows, before = records, []
        if layout.date is not None:
            first = next((r for r in records if parse_date(_cell(r, layout.date))), None)
            if first is not None:
                before = [r for r in records if r.row < first.row]
                region_rows = [r for r in records if r.row >= first.row]
                _adopt_unnamed_header(layout, [r for r in before if not r.blank])
    ex = Extraction(layout=layout)
    ex.preamble = [r for r in before if not r.blank and r.row != layout.header_row]
    ex.blank_rows = [r.row for r in region_rows if r.blank]

    if layout.date is None:
        ex.fatal = True
        ex.problems.append(
            Problem(
                None,
                ERROR,
                "I couldn't find a column of dates in this file. QuickBooks needs "
                "a Date column; check it's a transactions export (not a statement summary)." + _headings_hint(layout),
                "no_date_column",
            )
        )
        return ex
    if layout.amount is None and layout.debit is None and layout.credit is None:
        ex.fatal = True
        ex.problems.append(
            Problem(
                None,
                ERROR,
                "I couldn't find an amount column (or Debit/Credit columns) in "
                "this file. QuickBooks needs the amounts." + _headings_hint(layout),
                "no_amount_column",
            )
        )
        return ex

    money_roles = {"amount": layout.amount, "amount_alt": layout.amount_alt, "debit": layout.debit, "credit": layout.credit}
    money_roles = {k: v for k, v in money_roles.items() if v is not None}
    ex.decimal_sep = guess_decimal_separator(_cell(r, i) for r in region_rows if not r.blank for i in money_roles.values())

    dated: List[tuple] = []
    rows = [r for r in region_rows if not r.blank]
    n = 0
    last_row = None  # the spreadsheet row the previous transaction ended on
    while n < len(rows):
        rec = rows[n]
        n += 1
        cell = parse_date(_cell(rec, layout.date))
        if cell is None:
            if ex.rows and last_row is not None and rec.row == last_row + 1 and _continues(ex, rec, money_roles):
                _append_description(ex, ex.rows[-1], rec)
                ex.joined.append((ex.rows[-1].record.row, rec.row))
                last_row = rec.row
                continue
            _undated(ex, rec)
            last_row = None
            continue
        if n < len(rows) and not _has_money(rec, money_roles):
            nxt = rows[n]
            if (
                nxt.row == rec.row + 1
                and not _cell(nxt, layout.date).strip()
                and _has_money(nxt, money_roles)
                and not SUMMARY_WORDS.search(" ".join(nxt.cells))
            ):
                texts = {layout.description, *layout.fold}
                merged = tuple(
                    f"{a.strip()} {b.strip()}" if k in texts and a.strip() and b.strip() else (a if a.strip() else b)
                    for k, (a, b) in enumerate(_zip_cells(rec.cells, nxt.cells))
                )
                ex.joined.append((rec.row, nxt.row))
                rec = Record(row=rec.row, cells=merged)
                n += 1
        info = RowInfo(record=rec, date=cell)
        ex.rows.append(info)
        dated.append((rec.row, cell))
        _read_row(ex, info, money_roles)
        last_row = ex.joined[-1][1] if ex.joined and ex.joined[-1][0] == rec.row else rec.row
    for first, second in ex.joined:
        ex.problems.append(
            Problem(first, INFO, f"Rows {first}-{second} are one transaction written over two lines; I joined them.", "two_line")
        )

    _sign_convention(ex, filename)

    ex.order = resolve_order(dated, date_order)
    if ex.order.order is None and date_order not in ORDER_WORDS:
        decided = _date_evidence(ex, table, dated, region)
        if decided is not None:
            ex.order = decided
    if ex.order.note:
        ex.problems.append(Problem(None, INFO, ex.order.note, "date_order"))
    ex.date_reason = _date_reason(ex, dated, date_order)
    if ex.order.order is None:
        return ex  # ask the user first; no transactions without dates
    for info in ex.rows:
        day = info.date.reading(ex.order.order)
        if day is None:
            info.usable = False
            ex.problems.append(
                Problem(
                    info.record.row,
                    ERROR,
                    f"Row {info.record.row}: the date '{info.date.text}' doesn't fit the {ORDER_WORDS[ex.order.order]} "
                    f"order the rest of the file uses.{LEFT_OUT}",
                    "date_order_mismatch",
                )
            )
            continue
        if info.usable and info.amount is not None:
            ex.transactions.append(
                Transaction(
                    row=info.record.row,
                    date=day,
                    description=info.description,
                    amount=info.amount,
                    key=tuple(c.strip() for c in info.record.cells),
                )
            )
    return ex


def _zip_cells(a, b):
    width = max(len(a), len(b))
    return [(a[i] if i < len(a) else "", b[i] if i < len(b) else "") for i in range(width)]


def _headings_hint(layout: cols.Layout) -> str:
    if not layout.header:
        return ""
    names = ", ".join(f"'{h.strip()}'" for h in layout.header if h.strip())[:300]
    return (
        f" The headings on row {layout.header_row} are {names}; rename the date column 'Date' and the money "
        "column 'Amount' (or the two money columns 'Debit' and 'Credit') and upload it again."
    )


def _has_money(rec: Record, money_roles: Dict[str, int]) -> bool:
    return any(_cell(rec, i).strip() for i in money_roles.values())


def _continues(ex: Extraction, rec: Record, money_roles: Dict[str, int]) -> bool:
    """A line with no date and no amount right under a transaction, with text where the description goes: the
    rest of that transaction's description (banks wrap long ones onto a second line)."""
    layout = ex.layout
    if _cell(rec, layout.date).strip() or _has_money(rec, money_roles):
        return False
    text = " ".join(c.strip() for c in rec.cells if c.strip())
    if not text or SUMMARY_WORDS.search(text):
        return False
    places = [layout.description, *layout.fold]
    return any(_cell(rec, i).strip() for i in places if i is not None)


def _append_description(ex: Extraction, info: "RowInfo", rec: Record) -> None:
    layout = ex.layout
    parts = [clean_text(_cell(rec, i)) for i in [layout.description, *layout.fold] if i is not None]
    extra = " ".join(p for p in parts if p)
    if extra and extra.lower() not in info.description.lower():
        info.description = f"{info.description} {extra}".strip()[:MAX_DESCRIPTION_CHARS]


def _sign_convention(ex: Extraction, filename: str) -> None:
    layout = ex.layout
    readable = [i for i in ex.rows if i.usable and i.amount is not None]
    if layout.debit is not None or layout.credit is not None:
        ex.convention = signs.detect(
            [],
            headers=layout.header,
            filename=filename,
            debit_credit=(
                layout.name(layout.debit) if layout.debit is not None else "(none)",
                layout.name(layout.credit) if layout.credit is not None else "(none)",
            ),
        )
        return
    if layout.direction is not None:
        ex.convention = signs.detect([], headers=layout.header, filename=filename, marker=layout.name(layout.direction))
        return
    rows = []
    for info in readable:
        parsed = info.amounts.get("amount") or info.amounts.get("amount_alt")
        rows.append((info.amount, parsed.flags if parsed else frozenset(), info.description))
    ex.convention = signs.detect(rows, headers=layout.header, filename=filename)
    if ex.convention.flip or ex.convention.plus_in:
        for info in readable:
            parsed = info.amounts.get("amount") or info.amounts.get("amount_alt")
            info.amount = signs.apply(ex.convention, info.amount, parsed.flags if parsed else frozenset())
    if ex.convention.code in (signs.CARD_POSITIVE, signs.PLUS_IN, signs.UNSIGNED):
        severity = WARNING if ex.convention.code == signs.UNSIGNED else INFO
        ex.problems.append(Problem(None, severity, ex.convention.text, "sign_convention"))


def _date_evidence(ex: Extraction, table: Table, dated, region: str) -> Optional[OrderDecision]:
    """Every date reads both ways: decide from the file's other evidence, strongest first (another date column,
    dots between the numbers, headings in a language whose banks write the day first, the customer's region)."""
    layout = ex.layout
    others = []
    for i in range(layout.width):
        if i == layout.date:
            continue
        cells = [(info.record.row, parse_date(_cell(info.record, i))) for info in ex.rows]
        cells = [(r, c) for r, c in cells if c is not None]
        if len(cells) >= max(1, len(ex.rows) // 2):
            others.append((i, cells))
    for i, cells in others:
        decision = resolve_order(cells, None)
        if decision.order in ("MDY", "DMY") and decision.ask is None and decision.note:
            row, c = next(
                (r, c)
                for r, c in cells
                if c.reading(decision.order) and not c.reading("DMY" if decision.order == "MDY" else "MDY")
            )
            return OrderDecision(
                order=decision.order,
                note=(
                    f"Dates are {ORDER_WORDS[decision.order]}: the '{layout.name(i)}' column on row {row} has "
                    f"'{c.text}', which can only be {spoken(c.reading(decision.order), decision.order)}."
                ),
            )
    numeric = [c for _, c in dated if c.fixed is None]
    if numeric and all(c.style.startswith("num.") for c in numeric):
        return OrderDecision(
            order="DMY",
            note=(
                f"Dates are day/month/year: they are written with dots ('{numeric[0].text}'), the day-first style of "
                "German, Swiss, Dutch and other European banks."
            ),
        )
    foreign = [h.strip() for h in layout.header if cols.core_name(h) in cols.DAY_FIRST_WORDS]
    if foreign:
        shown = ", ".join(f"'{h}'" for h in foreign[:3])
        return OrderDecision(
            order="DMY",
            note=(f"Dates are day/month/year: the headings ({shown}) are in a language whose banks write the day first."),
        )
    if region in DAY_FIRST_REGIONS:
        return OrderDecision(
            order="DMY",
            note=(
                f"Dates are day/month/year: you're set up for {REGION_NAMES.get(region, region)}, where banks write "
                "the day first. If that's wrong, tell me the dates are month/day/year."
            ),
        )
    return None


def _date_reason(ex: Extraction, dated, hint: Optional[str]) -> str:
    order = ex.order
    if order.order is None:
        return "Every date could be month/day/year or day/month/year, and nothing else in the file says which."
    if order.note:
        return order.note
    if hint in ORDER_WORDS and order.order == hint:
        return f"You told me the dates are {ORDER_WORDS[hint]}."
    if dated and all(c.fixed is not None for _, c in dated):
        return "The dates have one reading only (year first or the month in words)."
    return "Every date reads the same either way (the day and month are equal)."


def _adopt_unnamed_header(layout: cols.Layout, before: List[Record]) -> None:
    """A row of plain words just above the first transaction, as wide as the data, is a header in
    words this module doesn't know (another language, a bank's own names): use it as the header. A few
    cells may be empty (a heading-less column of flags or ids)."""
    if not before:
        return
    rec = before[-1]
    cells = [c.strip() for c in rec.cells]
    while len(cells) > layout.width and not cells[-1]:
        cells.pop()
    filled = [c for c in cells if c]
    if len(cells) != layout.width or len(filled) < max(2, (2 * layout.width + 2) // 3):
        return
    if any(parse_date(c) or parse_amount(c) for c in filled):
        return
    if not all(re.search(r"[^\W\d_]", c) for c in filled):
        return
    layout.header_row, layout.header = rec.row, tuple(cells)


PENDING = re.compile(
    r"^(pending|pend|authori[sz]ed|authori[sz]ation|in progress|processing|vorgemerkt|"
    r"in bearbeitung|en attente|en cours|pendiente|in behandeling|in afwachting)\.?$",
    re.IGNORECASE,
)


def _undated(ex: Extraction, rec: Record) -> None:
    layout = ex.layout
    text = " ".join(c.strip() for c in rec.cells if c.strip())
    filled = sum(1 for c in rec.cells if c.strip())
    date_text = _cell(rec, layout.date).strip()
    if PENDING.match(date_text):
        ex.problems.append(
            Problem(
                rec.row,
                ERROR,
                f"Row {rec.row} is a pending transaction ({describe(date_text)} instead of a date); "
                "QuickBooks only takes posted ones, so delete it. It will be in a later download once it has posted." + LEFT_OUT,
                "pending",
            )
        )
        return
    if SUMMARY_WORDS.search(text) or filled < 2 or not date_text:
        ex.not_transactions.append(rec)
        ex.problems.append(
            Problem(
                rec.row,
                ERROR,
                f"Row {rec.row} isn't a transaction ({describe(text)} looks like a total, balance or note); "
                f"QuickBooks can't read it, so delete it.{LEFT_OUT}",
                "not_transaction",
            )
        )
    else:
        ex.problems.append(
            Problem(rec.row, ERROR, f"Row {rec.row}: I can't read the date {describe(date_text)}.{LEFT_OUT}", "bad_date")
        )


def _read_row(ex: Extraction, info: RowInfo, money_roles: Dict[str, int]) -> None:
    layout, rec, row = ex.layout, info.record, info.record.row
    cells = list(rec.cells)
    while len(cells) > layout.width and not cells[-1].strip():
        cells.pop()
    if len(cells) > layout.width:
        info.usable = False
        ex.problems.append(
            Problem(
                row,
                ERROR,
                f"Row {row} has {len(cells)} values but the {'header has' if layout.header else 'other rows have'} "
                f"{layout.width}: usually a comma inside a description or amount that isn't in quotes.{LEFT_OUT}",
                "column_count",
            )
        )
        return
    if len(cells) < layout.width:
        ex.short_rows.append(rec)
    for role, i in money_roles.items():
        raw = _cell(rec, i)
        info.cells[role] = raw
        info.amounts[role] = parse_amount(raw, ex.decimal_sep) if raw.strip() else None
    info.description = _description(ex, rec)
    if layout.amount is not None:
        _signed_amount(ex, info)
    else:
        _debit_credit_amount(ex, info)


def _signed_amount(ex: Extraction, info: RowInfo) -> None:
    layout, row = ex.layout, info.record.row
    role = "amount"
    raw = info.cells.get("amount", "")
    if not raw.strip() and layout.amount_alt is not None and info.cells.get("amount_alt", "").strip():
        role, raw = "amount_alt", info.cells["amount_alt"]
        ex.problems.append(
            Problem(
                row,
                WARNING,
                f"Row {row}: the amount is only in the '{layout.name(layout.amount_alt)}' column "
                f"({describe(raw)}); I used it. Check the currency.",
                "alternate_amount",
            )
        )
    if not raw.strip():
        info.usable = False
        if SUMMARY_WORDS.search(info.description):
            ex.not_transactions.append(info.record)
            ex.problems.append(
                Problem(
                    row,
                    ERROR,
                    f"Row {row} isn't a transaction ({describe(info.description)} has no amount); "
                    f"QuickBooks can't read it, so delete it.{LEFT_OUT}",
                    "not_transaction",
                )
            )
        else:
            ex.problems.append(Problem(row, ERROR, f"Row {row} has no amount.{LEFT_OUT}", "no_amount"))
        return
    parsed = info.amounts.get(role)
    if parsed is None:
        info.usable = False
        ex.problems.append(Problem(row, ERROR, f"Row {row}: I can't read the amount {describe(raw)}.{LEFT_OUT}", "bad_amount"))
        return
    value = parsed.value
    if layout.direction is not None:
        word = cols.marker_word(_cell(info.record, layout.direction))
        marked = -abs(value) if word in cols.DIRECTION_OUT else (abs(value) if word in cols.DIRECTION_IN else value)
        if value < 0 and marked > 0:
            ex.problems.append(
                Problem(
                    row,
                    WARNING,
                    f"Row {row}: the amount {describe(raw)} has a minus but the "
                    f"'{layout.name(layout.direction)}' column says money in; I followed the column. Check it.",
                    "sign_conflict",
                )
            )
        value = marked
    if value == 0:
        info.usable = False
        ex.problems.append(
            Problem(
                row,
                ERROR,
                f"Row {row}: the amount is {describe(raw)}; QuickBooks rejects zero-only amounts.{LEFT_OUT}",
                "zero_amount",
            )
        )
        return
    info.amount = value


def _debit_credit_amount(ex: Extraction, info: RowInfo) -> None:
    layout, row = ex.layout, info.record.row
    debit_raw, credit_raw = info.cells.get("debit", ""), info.cells.get("credit", "")
    debit, credit = info.amounts.get("debit"), info.amounts.get("credit")
    for raw, parsed, role in ((debit_raw, debit, "debit"), (credit_raw, credit, "credit")):
        if raw.strip() and parsed is None:
            info.usable = False
            name = layout.name(getattr(layout, role))
            ex.problems.append(
                Problem(row, ERROR, f"Row {row}: I can't read the {name} amount {describe(raw)}.{LEFT_OUT}", "bad_amount")
            )
    if not info.usable:
        return
    has_debit = debit is not None and not debit.is_zero
    has_credit = credit is not None and not credit.is_zero
    if has_debit and has_credit:
        info.usable = False
        ex.problems.append(
            Problem(
                row,
                ERROR,
                f"Row {row} has both {layout.name(layout.credit)} ({describe(credit_raw)}) and "
                f"{layout.name(layout.debit)} ({describe(debit_raw)}) filled in; QuickBooks needs one or the other. "
                f"Split it into two rows or fix it.{LEFT_OUT}",
                "both_credit_debit",
            )
        )
        return
    if not has_debit and not has_credit:
        info.usable = False
        zero = (debit is not None) or (credit is not None)
        ex.problems.append(
            Problem(
                row,
                ERROR,
                f"Row {row} has {'only zero amounts' if zero else 'no amount'}"
                f"{'; QuickBooks rejects zero-only cells' if zero else ''}.{LEFT_OUT}",
                "zero_amount" if zero else "no_amount",
            )
        )
        return
    if has_debit:
        info.amount = -abs(debit.value)
    else:
        info.amount = credit.value
        if credit.value < 0:
            ex.problems.append(
                Problem(
                    row,
                    WARNING,
                    f"Row {row}: the {layout.name(layout.credit)} column has a negative amount "
                    f"({describe(credit_raw)}); I kept it as money out. Check it.",
                    "negative_credit",
                )
            )


_SEPA_PURPOSE = re.compile(r"SVWZ\+\s*(.*?)(?:\s*\b(?:ABWA|ABWE|IBAN|BIC|EREF|MREF|CRED|KREF)\+|$)")


def _sepa(text: str) -> str:
    """German SEPA fields ("EREF+... MREF+... SVWZ+the purpose"): the purpose is what a bookkeeper reads."""
    m = _SEPA_PURPOSE.search(text)
    return m.group(1).strip() if m and m.group(1).strip() else text


def _description(ex: Extraction, rec: Record) -> str:
    layout, row = ex.layout, rec.row
    main = _sepa(clean_text(_cell(rec, layout.description)))
    parts = [main] if main else []
    for i in layout.fold:
        value = _sepa(clean_text(_cell(rec, i)))
        if not value:
            continue
        if i in layout.checks:
            if not re.fullmatch(r"\d+", value) or int(value) == 0:
                continue
            if re.search(rf"(?<!\d){re.escape(value)}(?!\d)", " ".join(parts)):
                continue  # "CHECK # 1042" already says it
            value = f"Check {value}"
        joined = " - ".join(parts).lower()
        if value.lower() in joined:
            continue
        if joined and value.lower().startswith(joined):
            parts = [value]  # "Shell Gas" then "Shell Gas purchase MASTER ...": the longer one says it all
            continue
        parts.append(value)
    text = " - ".join(parts)
    stripped = text.lstrip("=+-@ ")
    if stripped != text and text[:1] in FORMULA_START:
        ex.problems.append(
            Problem(
                row,
                WARNING,
                f"Row {row}: the description started with '{text[0]}', which spreadsheet programs run "
                "as a formula; I removed it.",
                "formula",
            )
        )
        text = stripped
    if len(text) > MAX_DESCRIPTION_CHARS:
        ex.problems.append(
            Problem(
                row,
                WARNING,
                f"Row {row}: the description was very long; I cut it to {MAX_DESCRIPTION_CHARS} characters.",
                "long_description",
            )
        )
        text = text[:MAX_DESCRIPTION_CHARS].rstrip()
    return text
