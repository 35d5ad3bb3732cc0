"""Turns a CSV table into transactions: finds the layout, reads every row, and says which rows
could not be used and why (those rows are left out of the converted file)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, Optional

from actions.upload import columns as cols
from actions.upload.amounts import Amount, describe, guess_decimal_separator, parse_amount
from actions.upload.csv_reader import Record, Table
from actions.upload.dates import ORDER_WORDS, DateCell, OrderDecision, parse_date, resolve_order
from actions.upload.limits import MAX_DESCRIPTION_CHARS
from actions.upload.model import ERROR, INFO, WARNING, Problem, Transaction

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


def extract(table: Table, date_order: Optional[str]) -> Extraction:
    records = table.records
    header = cols.find_header(records)
    if header is not None:
        after = [r for r in records if r.row > header.row]
        layout = cols.layout_from_header(header, [r for r in after if not r.blank])
        region = after
        before = [r for r in records if r.row < header.row]
    else:
        layout = cols.layout_from_content(records)
        region, before = records, []
        if layout.date is not None:
            first = next((r for r in records if parse_date(_cell(r, layout.date))), None)
            if first is not None:
                before = [r for r in records if r.row < first.row]
                region = [r for r in records if r.row >= first.row]
                _adopt_unnamed_header(layout, [r for r in before if not r.blank])
    ex = Extraction(layout=layout)
    ex.preamble = [r for r in before if not r.blank and r.row != layout.header_row]
    ex.blank_rows = [r.row for r in region if r.blank]

    if layout.date is None:
        ex.fatal = True
        ex.problems.append(Problem(None, ERROR, "I couldn't find a column of dates in this file. QuickBooks needs "
                                   "a Date column; check it's a transactions export (not a statement summary).",
                                   "no_date_column"))
        return ex
    if layout.amount is None and layout.debit is None and layout.credit is None:
        ex.fatal = True
        ex.problems.append(Problem(None, ERROR, "I couldn't find an amount column (or Debit/Credit columns) in "
                                   "this file. QuickBooks needs the amounts.", "no_amount_column"))
        return ex

    money_roles = {"amount": layout.amount, "amount_alt": layout.amount_alt, "debit": layout.debit,
                   "credit": layout.credit}
    money_roles = {k: v for k, v in money_roles.items() if v is not None}
    ex.decimal_sep = guess_decimal_separator(
        _cell(r, i) for r in region if not r.blank for i in money_roles.values()
    )

    dated: List[tuple] = []
    for rec in region:
        if rec.blank:
            continue
        cell = parse_date(_cell(rec, layout.date))
        if cell is None:
            _undated(ex, rec)
            continue
        info = RowInfo(record=rec, date=cell)
        ex.rows.append(info)
        dated.append((rec.row, cell))
        _read_row(ex, info, money_roles)

    ex.order = resolve_order(dated, date_order)
    if ex.order.note:
        ex.problems.append(Problem(None, INFO, ex.order.note, "date_order"))
    if ex.order.order is None:
        return ex  # ask the user first; no transactions without dates
    for info in ex.rows:
        day = info.date.reading(ex.order.order)
        if day is None:
            info.usable = False
            ex.problems.append(Problem(
                info.record.row, ERROR,
                f"Row {info.record.row}: the date '{info.date.text}' doesn't fit the {ORDER_WORDS[ex.order.order]} "
                f"order the rest of the file uses.{LEFT_OUT}", "date_order_mismatch"))
            continue
        if info.usable and info.amount is not None:
            ex.transactions.append(Transaction(
                row=info.record.row, date=day, description=info.description, amount=info.amount,
                key=tuple(c.strip() for c in info.record.cells),
            ))
    return ex


def _adopt_unnamed_header(layout: cols.Layout, before: List[Record]) -> None:
    """A row of plain words just above the first transaction, as wide as the data, is a header in
    words this module doesn't know (another language, a bank's own names): use it as the header."""
    if not before:
        return
    rec = before[-1]
    cells = [c.strip() for c in rec.cells]
    while len(cells) > layout.width and not cells[-1]:
        cells.pop()
    if len(cells) != layout.width or not all(cells):
        return
    if any(parse_date(c) or parse_amount(c) for c in cells):
        return
    layout.header_row, layout.header = rec.row, tuple(cells)


def _undated(ex: Extraction, rec: Record) -> None:
    layout = ex.layout
    text = " ".join(c.strip() for c in rec.cells if c.strip())
    filled = sum(1 for c in rec.cells if c.strip())
    date_text = _cell(rec, layout.date).strip()
    if SUMMARY_WORDS.search(text) or filled < 2 or not date_text:
        ex.not_transactions.append(rec)
        ex.problems.append(Problem(
            rec.row, ERROR,
            f"Row {rec.row} isn't a transaction ({describe(text)} looks like a total, balance or note); "
            f"QuickBooks can't read it, so delete it.{LEFT_OUT}", "not_transaction"))
    else:
        ex.problems.append(Problem(
            rec.row, ERROR, f"Row {rec.row}: I can't read the date {describe(date_text)}.{LEFT_OUT}", "bad_date"))


def _read_row(ex: Extraction, info: RowInfo, money_roles: Dict[str, int]) -> None:
    layout, rec, row = ex.layout, info.record, info.record.row
    cells = list(rec.cells)
    while len(cells) > layout.width and not cells[-1].strip():
        cells.pop()
    if len(cells) > layout.width:
        info.usable = False
        ex.problems.append(Problem(
            row, ERROR,
            f"Row {row} has {len(cells)} values but the {'header has' if layout.header else 'other rows have'} "
            f"{layout.width}: usually a comma inside a description or amount that isn't in quotes.{LEFT_OUT}",
            "column_count"))
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
        ex.problems.append(Problem(
            row, WARNING, f"Row {row}: the amount is only in the '{layout.name(layout.amount_alt)}' column "
            f"({describe(raw)}); I used it. Check the currency.", "alternate_amount"))
    if not raw.strip():
        info.usable = False
        if SUMMARY_WORDS.search(info.description):
            ex.not_transactions.append(info.record)
            ex.problems.append(Problem(
                row, ERROR, f"Row {row} isn't a transaction ({describe(info.description)} has no amount); "
                f"QuickBooks can't read it, so delete it.{LEFT_OUT}", "not_transaction"))
        else:
            ex.problems.append(Problem(row, ERROR, f"Row {row} has no amount.{LEFT_OUT}", "no_amount"))
        return
    parsed = info.amounts.get(role)
    if parsed is None:
        info.usable = False
        ex.problems.append(Problem(row, ERROR, f"Row {row}: I can't read the amount {describe(raw)}.{LEFT_OUT}",
                                   "bad_amount"))
        return
    value = parsed.value
    if layout.direction is not None:
        word = cols.normalize_header(_cell(info.record, layout.direction))
        if word in cols.DIRECTION_OUT:
            value = -abs(value)
        elif word in cols.DIRECTION_IN:
            value = abs(value)
    if value == 0:
        info.usable = False
        ex.problems.append(Problem(
            row, ERROR, f"Row {row}: the amount is {describe(raw)}; QuickBooks rejects zero-only amounts.{LEFT_OUT}",
            "zero_amount"))
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
            ex.problems.append(Problem(
                row, ERROR, f"Row {row}: I can't read the {name} amount {describe(raw)}.{LEFT_OUT}", "bad_amount"))
    if not info.usable:
        return
    has_debit = debit is not None and not debit.is_zero
    has_credit = credit is not None and not credit.is_zero
    if has_debit and has_credit:
        info.usable = False
        ex.problems.append(Problem(
            row, ERROR,
            f"Row {row} has both {layout.name(layout.credit)} ({describe(credit_raw)}) and "
            f"{layout.name(layout.debit)} ({describe(debit_raw)}) filled in; QuickBooks needs one or the other. "
            f"Split it into two rows or fix it.{LEFT_OUT}", "both_credit_debit"))
        return
    if not has_debit and not has_credit:
        info.usable = False
        zero = (debit is not None) or (credit is not None)
        ex.problems.append(Problem(
            row, ERROR,
            f"Row {row} has {'only zero amounts' if zero else 'no amount'}"
            f"{'; QuickBooks rejects zero-only cells' if zero else ''}.{LEFT_OUT}",
            "zero_amount" if zero else "no_amount"))
        return
    if has_debit:
        info.amount = -abs(debit.value)
    else:
        info.amount = credit.value
        if credit.value < 0:
            ex.problems.append(Problem(
                row, WARNING, f"Row {row}: the {layout.name(layout.credit)} column has a negative amount "
                f"({describe(credit_raw)}); I kept it as money out. Check it.", "negative_credit"))


def _description(ex: Extraction, rec: Record) -> str:
    layout, row = ex.layout, rec.row
    main = clean_text(_cell(rec, layout.description))
    parts = [main] if main else []
    for i in layout.fold:
        value = clean_text(_cell(rec, i))
        if not value:
            continue
        if i in layout.checks:
            if not re.fullmatch(r"\d+", value) or int(value) == 0:
                continue
            if re.search(rf"(?<!\d){re.escape(value)}(?!\d)", " ".join(parts)):
                continue  # "CHECK # 1042" already says it
            value = f"Check {value}"
        joined = " ".join(parts).lower()
        if value.lower() in joined:
            continue
        parts.append(value)
    text = " - ".join(parts)
    stripped = text.lstrip("=+-@ ")
    if stripped != text and text[:1] in FORMULA_START:
        ex.problems.append(Problem(
            row, WARNING, f"Row {row}: the description started with '{text[0]}', which spreadsheet programs run "
            "as a formula; I removed it.", "formula"))
        text = stripped
    if len(text) > MAX_DESCRIPTION_CHARS:
        ex.problems.append(Problem(row, WARNING, f"Row {row}: the description was very long; I cut it to "
                                   f"{MAX_DESCRIPTION_CHARS} characters.", "long_description"))
        text = text[:MAX_DESCRIPTION_CHARS].rstrip()
    return text
