"""QuickBooks Online's rules for an uploaded CSV, checked on the file exactly as the user has it.

From Intuit's help: exactly 3 columns (Date, Description, Amount; negative = money out) or 4
(Date, Description, Credit, Debit; one of the two filled per row); one date format throughout;
no zero-only cells; no currency symbols; no parentheses for negatives; amount headings only
"Amount", "Credit" or "Debit"; columns separated by commas.
"""

from __future__ import annotations

from collections import Counter
from typing import List

from bot.upload import amounts as am
from bot.upload.amounts import describe, format_amount
from bot.upload.columns import normalize_header
from bot.upload.csv_reader import DELIMITER_NAMES, Table
from bot.upload.dates import describe_style
from bot.upload.extract import Extraction
from bot.upload.model import ERROR, INFO, WARNING, Problem

_FLAG_RULES = (
    (am.PARENTHESES, ERROR, "parentheses", "uses parentheses; QuickBooks needs {fixed}"),
    (am.CURRENCY, ERROR, "currency_symbol", "has a currency symbol or code; QuickBooks needs just the number ({fixed})"),
    (am.TRAILING_MINUS, ERROR, "trailing_minus", "has the minus sign at the end; QuickBooks needs {fixed}"),
    (am.CR, ERROR, "cr_dr", "uses a CR suffix; QuickBooks needs a plain number ({fixed})"),
    (am.DR, ERROR, "cr_dr", "uses a DR suffix; QuickBooks needs a minus sign instead ({fixed})"),
    (am.DECIMAL_COMMA, ERROR, "decimal_comma", "uses a decimal comma; QuickBooks needs a decimal point ({fixed})"),
    (am.GROUPING, WARNING, "thousands", "has thousands separators; safer without them ({fixed})"),
    (am.PLUS, WARNING, "plus_sign", "has a plus sign; safer without it ({fixed})"),
    (am.MANY_DECIMALS, WARNING, "decimals", "has more than two decimal places; it becomes {fixed}"),
)
EXPECTED = {3: ("date", "description", "amount"), 4: ("date", "description", "credit", "debit")}
HEADINGS = {"amount": "Amount", "credit": "Credit", "debit": "Debit"}


def _row_list(rows: List[int]) -> str:
    if len(rows) == 1:
        return f"Row {rows[0]}"
    if rows == list(range(rows[0], rows[-1] + 1)):
        return f"Rows {rows[0]}-{rows[-1]}"
    return "Rows " + ", ".join(str(r) for r in rows)


def check(table: Table, ex: Extraction, encoding: str) -> List[Problem]:
    out: List[Problem] = []
    layout = ex.layout
    if table.delimiter != ",":
        out.append(
            Problem(
                None,
                ERROR,
                f"The columns are separated by {DELIMITER_NAMES.get(table.delimiter, repr(table.delimiter))}; "
                "QuickBooks needs commas.",
                "delimiter",
            )
        )
    if encoding not in ("utf-8", "utf-8-sig", "ascii"):
        out.append(
            Problem(
                None,
                WARNING,
                f"The file is saved as {encoding}, not UTF-8; accented letters may come out "
                "wrong in QuickBooks (the converted file is UTF-8).",
                "encoding",
            )
        )
    for rec in ex.preamble:
        text = " ".join(c.strip() for c in rec.cells if c.strip())
        where = "the column headings" if layout.header_row else "the first transaction"
        out.append(
            Problem(
                rec.row,
                ERROR,
                f"Row {rec.row} ({describe(text)}) comes before {where}; QuickBooks needs "
                f"the headings on row 1, so delete the rows above them.",
                "preamble",
            )
        )
    if layout.header_row is None and layout.date is not None:
        out.append(
            Problem(
                None,
                WARNING,
                "The file has no heading row. When QuickBooks asks whether the first row "
                "is a header, say no (the converted file has headings).",
                "no_header",
            )
        )
    out += _columns(ex)
    for r in ex.blank_rows:
        out.append(Problem(r, WARNING, f"Row {r} is empty; delete it.", "blank_row"))
    for rec in ex.short_rows:
        out.append(
            Problem(rec.row, ERROR, f"Row {rec.row} has {len(rec.cells)} values; the others have {layout.width}.", "column_count")
        )
    out += _dates(ex)
    out += _amounts(ex)
    for info in ex.rows:
        if info.usable and info.amount is not None and not info.description:
            out.append(Problem(info.record.row, WARNING, f"Row {info.record.row} has no description.", "no_description"))
    return out


def _columns(ex: Extraction) -> List[Problem]:
    layout = ex.layout
    out: List[Problem] = []
    row = layout.header_row
    roles = {}
    for role in ("date", "description", "amount", "debit", "credit"):
        i = getattr(layout, role)
        if i is not None:
            roles[i] = role
    names = ", ".join(layout.name(i) for i in range(layout.width))
    expected = EXPECTED.get(layout.width)
    if expected is None or sorted(roles.values()) != sorted(expected) or len(roles) != layout.width:
        out.append(
            Problem(
                None,
                ERROR,
                f"The file has {layout.width} columns ({names}). QuickBooks needs exactly 3 "
                "(Date, Description, Amount) or 4 (Date, Description, Credit, Debit).",
                "columns",
            )
        )
    if layout.header:
        for i, role in roles.items():
            want = HEADINGS.get(role)
            have = layout.header[i].strip()
            if want and have.lower() != want.lower():
                out.append(
                    Problem(
                        row,
                        ERROR,
                        f"Row {row}: the heading '{have}' must be '{want}'; QuickBooks only "
                        "accepts the headings Amount, Credit and Debit for money.",
                        "header_names",
                    )
                )
    if layout.debit is not None or layout.credit is not None:
        out_name = layout.name(layout.debit) if layout.debit is not None else "(none)"
        in_name = layout.name(layout.credit) if layout.credit is not None else "(none)"
        guess = " (there is no heading, so I assumed the first money column is money out)" if layout.assumed_direction else ""
        out.append(
            Problem(
                None,
                INFO,
                f"I took '{out_name}' as money out (made negative) and '{in_name}' as money in"
                f"{guess}. Sources disagree on which of Credit/Debit is which: check the direction "
                "when you map the columns in QuickBooks.",
                "direction",
            )
        )
    card_convention = ex.convention is not None and ex.convention.code == "card_positive"
    if any("card" in normalize_header(h) for h in layout.header) and not card_convention:
        out.append(
            Problem(
                None,
                INFO,
                "This looks like a credit-card export. Card files often show purchases as "
                "positive numbers; after uploading, check that purchases come in as charges, not payments.",
                "card_sign",
            )
        )
    if layout.direction is not None:
        out.append(
            Problem(
                None,
                INFO,
                f"The amounts have no sign, so I used the '{layout.name(layout.direction)}' "
                "column (debit/DR = money out). Check the direction when you map the columns.",
                "direction",
            )
        )
    extra = [layout.name(i) for i in layout.fold]
    dropped = [layout.name(i) for i in list(layout.balance) + list(layout.dropped)]
    if extra or dropped:
        parts = []
        if extra:
            parts.append("added " + ", ".join(extra) + " to the description")
        if dropped:
            parts.append("left out " + ", ".join(dropped))
        out.append(Problem(None, INFO, "In the converted file I " + " and ".join(parts) + ".", "columns_used"))
    return out


def _dates(ex: Extraction) -> List[Problem]:
    out: List[Problem] = []
    if not ex.rows:
        return out
    styles = Counter(info.date.style for info in ex.rows)
    main_style = styles.most_common(1)[0][0]
    example = next(info.date.text for info in ex.rows if info.date.style == main_style)
    for info in ex.rows:
        cell, row = info.date, info.record.row
        if cell.style != main_style:
            out.append(
                Problem(
                    row,
                    ERROR,
                    f"Row {row}: the date '{cell.text}' is written differently from the rest "
                    f"(like '{example}'); QuickBooks needs one date format throughout.",
                    "date_format",
                )
            )
        special = describe_style(cell)
        if cell.weekday or cell.style.startswith("compact"):
            out.append(
                Problem(row, ERROR, f"Row {row}: the date '{cell.text}' {special}; QuickBooks can't read it.", "date_unreadable")
            )
        elif cell.style.startswith("name-") or cell.has_time:
            out.append(
                Problem(
                    row, WARNING, f"Row {row}: the date '{cell.text}' {special}; QuickBooks may not recognise it.", "date_style"
                )
            )
    return out


def _amounts(ex: Extraction) -> List[Problem]:
    out: List[Problem] = []
    layout = ex.layout
    two_columns = layout.debit is not None or layout.credit is not None
    for info in ex.rows:
        if not info.usable:
            continue
        row = info.record.row
        for role, parsed in info.amounts.items():
            raw = info.cells.get(role, "")
            if parsed is None:
                continue
            if parsed.is_zero:
                if two_columns:
                    out.append(
                        Problem(
                            row,
                            ERROR,
                            f"Row {row}: the {layout.name(getattr(layout, role))} cell is "
                            f"{describe(raw)}; QuickBooks rejects zero-only cells, so leave it empty.",
                            "zero_cell",
                        )
                    )
                continue
            if role == "debit":
                fixed = format_amount(abs(parsed.value))  # a Debit cell holds the number without a sign
            else:
                fixed = format_amount(parsed.value)
            for flag, severity, code, text in _FLAG_RULES:
                if flag == am.GROUPING and am.DECIMAL_COMMA in parsed.flags:
                    continue  # 1.234,56: the decimal-comma error already covers it
                if flag in parsed.flags:
                    out.append(Problem(row, severity, f"Row {row}: the amount {describe(raw)} " + text.format(fixed=fixed), code))
    return out
