"""Finds the header row (past any account-details preamble) and what each column holds: date,
description, amount or debit/credit, balance, extras worth folding into the description, and
columns to drop. Works from header names, or from the content when there is no header."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from actions.upload.amounts import parse_amount
from actions.upload.csv_reader import Record
from actions.upload.dates import parse_date
from actions.upload.limits import HEADER_SEARCH_ROWS

DATE_NAMES = (
    "date", "transaction date", "trans date", "txn date", "date of transaction", "transaction posted date",
    "posting date", "posted date", "post date", "date posted", "booking date", "value date",
    "effective date", "completed date", "started date", "process date", "processed date",
)
DESCRIPTION_NAMES = (
    "description", "transaction description", "description 1", "transaction details", "details",
    "narrative", "narration", "payee", "name", "merchant", "merchant name", "memo", "particulars",
    "transaction", "counterparty",
)
FOLD_NAMES = (
    "description 2", "memo", "notes", "note", "notes and tags", "reference", "ref", "payment reference",
    "payee", "name", "merchant", "merchant name", "counterparty", "additional info",
    "check number", "cheque number", "check", "cheque", "check no", "cheque no", "check or slip",
    "check num", "chq no",
)
CHECK_NAMES = ("check number", "cheque number", "check", "cheque", "check no", "cheque no", "check or slip",
               "check num", "chq no")
DEBIT_NAMES = (
    "debit", "debits", "debit amount", "debit amt", "withdrawal", "withdrawals", "withdrawal amount",
    "money out", "paid out", "out", "outflow", "amount out", "spent", "charges",
)
CREDIT_NAMES = (
    "credit", "credits", "credit amount", "credit amt", "deposit", "deposits", "deposit amount",
    "money in", "paid in", "in", "inflow", "amount in", "received", "receipts",
)
AMOUNT_NAMES = ("amount", "amt", "transaction amount", "value", "net amount", "sum")
CURRENCY_HEADERS = ("cad", "usd", "gbp", "eur", "aud", "nzd")
BALANCE_WORDS = ("balance", "running bal", "bal")
DIRECTION_NAMES = ("type", "transaction type", "dr cr", "debit credit", "cr dr", "details", "d c")
DIRECTION_OUT = {"dr", "debit", "d", "withdrawal", "db", "out"}
DIRECTION_IN = {"cr", "credit", "c", "deposit", "in"}


def normalize_header(text: str) -> str:
    s = text.strip().lower().replace("#", " ")
    s = re.sub(r"\([^)]*\)", lambda m: " " + m.group(0)[1:-1] + " ", s)
    s = re.sub(r"[^a-z0-9]+", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def header_role(text: str) -> Optional[str]:
    n = normalize_header(text)
    if not n:
        return None
    if n in DATE_NAMES:
        return "date"
    if n in DEBIT_NAMES:
        return "debit"
    if n in CREDIT_NAMES:
        return "credit"
    if any(n == w or n.startswith(w + " ") or n.endswith(" " + w) for w in BALANCE_WORDS):
        return "balance"
    if n in AMOUNT_NAMES or n.startswith("amount ") or n in CURRENCY_HEADERS or (
        n.split(" ")[0] in AMOUNT_NAMES and len(n.split(" ")) == 2 and n.split(" ")[1] in CURRENCY_HEADERS
    ):
        return "amount"
    if n in DESCRIPTION_NAMES:
        return "description"
    if n in FOLD_NAMES:
        return "fold"
    return None


@dataclass
class Layout:
    header_row: Optional[int]  # spreadsheet row of the header, None when headerless
    header: Tuple[str, ...]  # header cells (empty when headerless)
    width: int  # number of columns the data rows should have
    date: Optional[int] = None
    description: Optional[int] = None
    amount: Optional[int] = None
    amount_alt: Optional[int] = None  # a second amount column (e.g. RBC's USD$), used when the first is blank
    debit: Optional[int] = None
    credit: Optional[int] = None
    direction: Optional[int] = None  # a DR/CR column giving the sign of unsigned amounts
    balance: List[int] = field(default_factory=list)
    fold: List[int] = field(default_factory=list)
    checks: List[int] = field(default_factory=list)  # fold columns that hold check numbers
    dropped: List[int] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # how the layout was worked out
    assumed_direction: bool = False  # headerless debit/credit pair: which is which was assumed

    def name(self, index: Optional[int]) -> str:
        if index is None:
            return ""
        if self.header and index < len(self.header) and self.header[index].strip():
            return self.header[index].strip()
        return f"column {index + 1}"


# ---------------------------------------------------------------------------- header present
def find_header(records: Sequence[Record]) -> Optional[Record]:
    """The first record (among the first rows) naming a date column and an amount-like column."""
    seen = 0
    for rec in records:
        if rec.blank:
            continue
        seen += 1
        if seen > HEADER_SEARCH_ROWS:
            break
        roles = [header_role(c) for c in rec.cells]
        if "date" in roles and any(r in ("amount", "debit", "credit") for r in roles):
            # a data row never looks like this: its date cell would parse as a date
            if not any(parse_date(c) for c in rec.cells):
                return rec
    return None


def _first(indexed: Sequence[Tuple[int, str]], priority: Sequence[str]) -> Optional[int]:
    best = None
    for i, n in indexed:
        if n in priority:
            rank = priority.index(n)
            if best is None or rank < best[0]:
                best = (rank, i)
    return best[1] if best else None


def layout_from_header(header: Record, data: Sequence[Record]) -> Layout:
    cells = header.cells
    layout = Layout(header_row=header.row, header=cells, width=len(cells))
    normalized = [(i, normalize_header(c)) for i, c in enumerate(cells)]
    roles = {i: header_role(c) for i, c in enumerate(cells)}
    layout.date = _first([(i, n) for i, n in normalized if roles[i] == "date"], DATE_NAMES)
    amounts = [i for i in roles if roles[i] == "amount"]
    debits = [i for i in roles if roles[i] == "debit"]
    credits = [i for i in roles if roles[i] == "credit"]
    if amounts:
        layout.amount = amounts[0]
        if len(amounts) > 1:
            layout.amount_alt = amounts[1]
    elif debits or credits:
        layout.debit = debits[0] if debits else None
        layout.credit = credits[0] if credits else None
    described = [(i, n) for i, n in normalized if n in DESCRIPTION_NAMES and i != layout.date]
    layout.description = _first(described, DESCRIPTION_NAMES)
    used = {layout.date, layout.amount, layout.amount_alt, layout.debit, layout.credit, layout.description}
    for i, n in normalized:
        if i in used:
            continue
        role = roles[i]
        if role == "balance":
            layout.balance.append(i)
        elif n in FOLD_NAMES:
            layout.fold.append(i)
            if n in CHECK_NAMES:
                layout.checks.append(i)
        else:
            layout.dropped.append(i)
    if layout.description is None:
        layout.description = _guess_description(data, exclude=used | set(layout.balance))
        if layout.description is not None:
            if layout.description in layout.dropped:
                layout.dropped.remove(layout.description)
            if layout.description in layout.fold:
                layout.fold.remove(layout.description)
    if layout.amount is not None and layout.debit is None and layout.credit is None:
        _find_direction_column(layout, data)
    return layout


def _find_direction_column(layout: Layout, data: Sequence[Record]) -> None:
    """Unsigned amounts with a DR/CR (debit/credit) column beside them: use it for the sign."""
    data = data[:2000]
    values = [parse_amount(_cell(r, layout.amount)) for r in data]
    values = [v for v in values if v is not None]
    if not values or any(v.value < 0 for v in values):
        return
    for i in list(layout.dropped) + list(layout.fold):
        if layout.header and (i >= len(layout.header) or normalize_header(layout.header[i]) not in DIRECTION_NAMES):
            continue
        words = {normalize_header(_cell(r, i)) for r in data} - {""}
        if words and words <= (DIRECTION_OUT | DIRECTION_IN) and words & DIRECTION_OUT:
            layout.direction = i
            return


# ---------------------------------------------------------------------------- no header
def _cell(rec: Record, i: Optional[int]) -> str:
    if i is None or i >= len(rec.cells):
        return ""
    return rec.cells[i]


def _money_like(text: str) -> bool:
    s = text.strip()
    return bool(parse_amount(s)) and bool(re.search(r"[.,]\d{1,2}\s*\)?\s*(?:-|CR|DR|cr|dr)?$|[$£€]|^\(|-", s))


def _guess_description(data: Sequence[Record], exclude) -> Optional[int]:
    width = max((len(r.cells) for r in data), default=0)
    best = None
    for i in range(width):
        if i in exclude:
            continue
        texts = [_cell(r, i).strip() for r in data]
        texts = [t for t in texts if t]
        if not texts:
            continue
        letters = sum(1 for t in texts if re.search(r"[A-Za-z]{2,}", t))
        if letters < len(texts) * 0.5:
            continue
        avg = sum(len(t) for t in texts) / len(texts)
        if best is None or avg > best[0]:
            best = (avg, i)
    return best[1] if best else None


def layout_from_content(records: Sequence[Record]) -> Layout:
    """For files without a header row (Wells Fargo, TD, HSBC...): judge each column by its values."""
    rows = [r for r in records if not r.blank]
    widths: Dict[int, int] = {}
    for r in rows:
        widths[len(r.cells)] = widths.get(len(r.cells), 0) + 1
    width = max(widths.items(), key=lambda kv: (kv[1], kv[0]))[0] if widths else 0
    layout = Layout(header_row=None, header=(), width=width)
    if not rows or width < 2:
        return layout
    date_scores = []
    for i in range(width):
        filled = [_cell(r, i) for r in rows if _cell(r, i).strip()]
        good = sum(1 for c in filled if parse_date(c))
        date_scores.append(good / len(rows))
    best_date = max(range(width), key=lambda i: (date_scores[i], -i))
    if date_scores[best_date] < 0.5:
        return layout
    layout.date = best_date
    data = [r for r in rows if parse_date(_cell(r, best_date))]
    money_cols = []
    for i in range(width):
        if i == best_date:
            continue
        filled = [_cell(r, i) for r in data if _cell(r, i).strip()]
        if not filled:
            continue
        money = sum(1 for c in filled if _money_like(c))
        if money >= 0.8 * len(filled) and money >= 1:
            money_cols.append(i)
    pair = None
    for x in money_cols[:6]:
        for y in money_cols[:6]:
            if y <= x:
                continue
            exclusive = sum(1 for r in data if bool(_cell(r, x).strip()) != bool(_cell(r, y).strip()))
            if exclusive >= 0.9 * len(data):
                pair = (x, y)
                break
        if pair:
            break
    if pair:
        layout.debit, layout.credit = pair
        layout.assumed_direction = True
        layout.balance = [i for i in money_cols if i not in pair]
    elif money_cols:
        layout.amount = money_cols[0]
        layout.balance = money_cols[1:]
    used = {layout.date, layout.amount, layout.debit, layout.credit, *layout.balance}
    layout.description = _guess_description(data, exclude=used)
    used.add(layout.description)
    for i in range(width):
        if i in used:
            continue
        values = [_cell(r, i).strip() for r in data]
        filled = [v for v in values if v]
        if filled and all(re.fullmatch(r"\d{3,8}", v) for v in filled):
            layout.fold.append(i)
            layout.checks.append(i)
        else:
            layout.dropped.append(i)
    if layout.amount is not None:
        _find_direction_column(layout, data)
    return layout
