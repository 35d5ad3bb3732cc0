"""Manual upload assistant: checks a bank export against QuickBooks Online's upload rules and
converts it into a clean CSV. Plain Python over bytes; nothing is stored, nothing is executed.

    report = analyse(data, "export.csv", date_order=None, last_booked=None, region="US")
    report.ok, report.problems, report.needs_date_order, report.converted, report.plain_text()
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import List, Optional, Sequence

from bot.upload import columns as cols
from bot.upload import convert, duplicates, validate, verify
from bot.upload.csv_reader import read_table
from bot.upload.dates import ORDERS
from bot.upload.encoding import decode, is_binary, label
from bot.upload.extract import extract
from bot.upload.limits import MAX_PROBLEMS, QBO_MAX_FILE_BYTES, human_size, max_input_bytes
from bot.upload.model import ERROR, INFO, WARNING, ConvertedFile, Problem, Transaction, money
from bot.upload.ofx import analyse_ofx
from bot.upload.report import UploadReport
from bot.upload.sniff import OFX_EXTENSIONS, FileName, clean_filename, magic_kind, text_kind

__all__ = ["analyse", "UploadReport", "Problem", "ConvertedFile"]

logger = logging.getLogger(__name__)

DAY_FIRST_REGIONS = ("UK", "CA", "IE", "AU", "NZ")
EXPORT_INSTEAD = "Download the transactions from your bank as CSV, or as QuickBooks Web Connect (.QBO), and upload that instead."
REJECTED = {
    "qif": (
        "qif",
        "This is a .QIF file. QuickBooks Online doesn't accept QIF (an older format used by Quicken and "
        "QuickBooks Desktop), so the upload fails. On your bank's download page choose 'QuickBooks Web "
        "Connect (.QBO)' or 'CSV' for the same dates instead.",
    ),
    "xlsx": (
        "xlsx",
        "This is an Excel workbook. QuickBooks Online only takes CSV or Web Connect files: in Excel use "
        "File > Save As > 'CSV (Comma delimited)' and upload that, or export CSV/QBO from your bank.",
    ),
    "xls": (
        "xls",
        "This is an old-style Excel (.xls) workbook. QuickBooks Online only takes CSV or Web Connect files: "
        "in Excel use File > Save As > 'CSV (Comma delimited)', or export CSV/QBO from your bank.",
    ),
    "ods": ("ods", "This is a spreadsheet (OpenDocument). Save it as CSV and upload that, or export CSV/QBO from your bank."),
    "numbers": (
        "numbers",
        "This is a Numbers spreadsheet. Use File > Export To > CSV and upload that, or export CSV/QBO from your bank.",
    ),
    "zip": (
        "zip",
        "This is a zip archive; I don't open archives. Unzip it and upload the CSV or QBO file inside. " + EXPORT_INSTEAD,
    ),
    "archive": ("archive", "This is a compressed archive; I don't open archives. " + EXPORT_INSTEAD),
    "pdf": ("pdf", "This is a PDF statement. QuickBooks can't import PDFs. " + EXPORT_INSTEAD),
    "image": ("image", "This is a picture, not a transactions file. " + EXPORT_INSTEAD),
    "rtf": ("rtf", "This is a word-processor document, not a transactions file. " + EXPORT_INSTEAD),
    "html": ("html", "This is a web page (some banks save these with an .xls name), not a CSV. " + EXPORT_INSTEAD),
    "xml": ("xml", "This is an XML file (perhaps an Excel XML spreadsheet), not a CSV or Web Connect file. " + EXPORT_INSTEAD),
    "binary": (
        "binary",
        "This file isn't readable text, so it isn't a CSV or Web Connect file (it may be damaged). " + EXPORT_INSTEAD,
    ),
}


def analyse(
    data: bytes, filename: str, *, date_order: Optional[str] = None, last_booked: Optional[dt.date] = None, region: str = "US"
) -> UploadReport:
    """Check ``data`` (the uploaded file's bytes) against QuickBooks Online's upload rules and
    convert it. Never raises: hostile or broken input comes back as problems in the report."""
    try:
        return _analyse(data, filename, date_order=date_order, last_booked=last_booked, region=region)
    except Exception:  # the public promise: no exception escapes
        logger.exception("upload analysis failed")
        try:
            shown = clean_filename(filename).display
        except Exception:
            shown = "upload"
        return UploadReport(
            ok=False,
            file_type="unknown",
            filename=shown,
            problems=[Problem(None, ERROR, "Something in this file stopped me from reading it. " + EXPORT_INSTEAD, "unreadable")],
        )


# ---------------------------------------------------------------------------- orchestration
def _analyse(data, filename, *, date_order, last_booked, region) -> UploadReport:
    name = clean_filename(filename)
    notes: List[Problem] = []
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return _fail(name, name.ext or "unknown", None, "empty", "There is no file content to check.")
    data = bytes(data)
    hint = None
    if date_order is not None:
        candidate = str(date_order).strip().upper()
        if candidate in ORDERS:
            hint = candidate
        else:
            notes.append(
                Problem(None, WARNING, f"I ignored the date order '{str(date_order)[:10]}' (use MDY, DMY or YMD).", "hint")
            )
    if isinstance(last_booked, dt.datetime):
        last_booked = last_booked.date()
    elif last_booked is not None and not isinstance(last_booked, dt.date):
        notes.append(Problem(None, WARNING, "I ignored the last-booked date: it isn't a date.", "hint"))
        last_booked = None
    region = str(region or "US").strip().upper()[:8]
    region = {"GB": "UK"}.get(region, region)

    limit = max_input_bytes()
    if len(data) > limit:
        return _fail(
            name,
            name.ext or "unknown",
            None,
            "too_large",
            f"The file is {human_size(len(data))}; I can check files up to {human_size(limit)}, and "
            f"QuickBooks itself takes at most {human_size(QBO_MAX_FILE_BYTES)} per file. Download a "
            "shorter date range from your bank.",
        )
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        return _fail(name, name.ext or "unknown", None, "empty", "The file is empty. " + EXPORT_INSTEAD)

    kind = magic_kind(data, name.ext)
    if kind:
        return _reject(name, kind)
    text, encoding = decode(data)
    if is_binary(text):
        return _reject(name, "binary")
    kind = text_kind(text)
    if kind == "ofx":
        return _ofx_report(name, data, notes, last_booked, region)
    if kind in REJECTED:
        return _reject(name, kind)
    return _csv_report(name, data, text, encoding, notes, hint, last_booked, region)


def _fail(name: FileName, file_type: str, encoding, code: str, message: str) -> UploadReport:
    return UploadReport(
        ok=False, file_type=file_type, encoding=encoding, filename=name.display, problems=[Problem(None, ERROR, message, code)]
    )


def _reject(name: FileName, kind: str) -> UploadReport:
    file_type, message = REJECTED[kind]
    return _fail(name, file_type, None, "rejected_type", message)


def _accepted_extensions(region: str) -> Sequence[str]:
    return ("csv", "qbo", "qfx", "ofx", "txt") if region in ("UK", "IE") else ("csv", "qbo", "qfx", "ofx")


def _output_order(region: str) -> str:
    return "DMY" if region in DAY_FIRST_REGIONS else "MDY"


def _size_problem(data: bytes, converted_note: str) -> Optional[Problem]:
    if len(data) <= QBO_MAX_FILE_BYTES:
        return None
    return Problem(
        None,
        ERROR,
        f"The file is {human_size(len(data))}; QuickBooks takes at most "
        f"{human_size(QBO_MAX_FILE_BYTES)} per upload. {converted_note}",
        "qbo_size",
    )


def _totals(amounts: Sequence[Decimal]) -> dict:
    money_in = sum((a for a in amounts if a > 0), Decimal("0"))
    money_out = -sum((a for a in amounts if a < 0), Decimal("0"))
    return {"money_in": money(money_in), "money_out": money(money_out), "net": money(money_in - money_out)}


def _date_span(transactions: Sequence[Transaction]) -> dict:
    if not transactions:
        return {"date_from": None, "date_to": None}
    return {"date_from": min(t.date for t in transactions).isoformat(), "date_to": max(t.date for t in transactions).isoformat()}


def _finish(report: UploadReport) -> UploadReport:
    problems = report.problems
    if len(problems) > MAX_PROBLEMS:
        ordered = report.ordered_problems()
        kept, dropped = ordered[:MAX_PROBLEMS], ordered[MAX_PROBLEMS:]
        kept.append(
            Problem(None, WARNING, f"...and {len(dropped)} more problems like the ones above, not listed one by one.", "more")
        )
        report.problems = kept
    report.ok = not any(p.severity == ERROR for p in report.problems)
    return report


def _converted(transactions: List[Transaction], stem: str, order: str, last_booked, noun: str):
    problems: List[Problem] = []
    files = convert.build(transactions, stem, order)
    booked, fresh = duplicates.already_booked(transactions, last_booked, noun)
    if booked is not None:
        if noun != "rows":
            booked = Problem(None, booked.severity, booked.message, booked.code)
        problems.append(booked)
        if fresh:
            files += convert.build(fresh, stem, order, kind="new_only")
    return files, problems


# ---------------------------------------------------------------------------- the check before anything is offered
def _check(report: UploadReport, problems: List[Problem], source, out_order: str, left_out, last_booked, noun: str):
    """Every converted copy against the independent read of the source; on any difference the copies are
    withdrawn and the report says what differs and what to do."""
    main = [c for c in report.converted if c.kind == "all"]
    verdict = verify.compare(source, main, out_order, left_out=left_out, noun=noun)
    fresh = [c for c in report.converted if c.kind == "new_only"]
    if verdict.passed and fresh:
        again = verify.compare(source, fresh, out_order, left_out=left_out, after=last_booked, noun=noun)
        if not again.passed:
            verdict.passed = False
            verdict.differences += [f"in the copy without the rows already in QuickBooks, {d}" for d in again.differences]
    if verdict.passed:
        if verdict.left_out:
            rows = duplicates.ranges(verdict.left_out)
            word = "Rows" if noun == "rows" else "Transactions"
            problems.append(
                Problem(
                    None,
                    WARNING,
                    f"The copy has {verdict.copy_rows} of the {verdict.copy_rows + len(verdict.left_out)} "
                    f"{noun} in your file: {word.lower()} {rows} are left out (see why above); add "
                    "them in QuickBooks by hand if they are real transactions.",
                    "left_out",
                )
            )
        return verdict
    report.converted = []
    n, money_in, money_out = source.totals()
    what = "; ".join(verdict.differences)
    problems.append(
        Problem(
            None,
            ERROR,
            f"I didn't make a converted copy: checking it against your file, {what}. "
            f"Your file has {n} {noun} (money in {money(money_in)}, money out {money(money_out)}) and I "
            "won't hand you a copy that loses or changes any of them. Upload the original file to "
            "QuickBooks if it accepts it, or download the same dates from your bank in the other "
            "format (CSV or Web Connect .QBO) and send me that.",
            "check_failed",
        )
    )
    return verdict


def _csv_source(text: str, table, ex, order):
    layout = ex.layout
    conv = ex.convention
    return verify.read_csv(
        text,
        delimiter=table.delimiter,
        header_row=layout.header_row,
        date_col=layout.date,
        amount_col=layout.amount,
        debit_col=layout.debit,
        credit_col=layout.credit,
        marker_col=layout.direction,
        text_cols=[i for i in (layout.description, *layout.fold) if i is not None],
        order=order,
        decimal_sep=ex.decimal_sep,
        flip=bool(conv and conv.flip),
        plus_in=bool(conv and conv.plus_in),
        marker_out=cols.DIRECTION_OUT if layout.direction is not None else (),
        marker_in=cols.DIRECTION_IN if layout.direction is not None else (),
        amount_alt=layout.amount_alt,
    )


# ---------------------------------------------------------------------------- CSV
def _csv_report(name, data, text, encoding, notes, hint, last_booked, region) -> UploadReport:
    report = UploadReport(ok=False, file_type="csv", encoding=encoding, filename=name.display)
    problems = list(notes)
    accepted = _accepted_extensions(region)
    if name.ext in OFX_EXTENSIONS:
        problems.append(
            Problem(
                None,
                ERROR,
                f"The file is named .{name.ext} but it is a CSV inside; QuickBooks will "
                "fail to read it. Upload the converted .csv instead.",
                "extension",
            )
        )
    elif name.ext not in accepted:
        what = f"a .{name.ext} name" if name.ext else "no extension"
        problems.append(
            Problem(
                None,
                ERROR,
                f"The file has {what}; QuickBooks takes .csv"
                f"{', .txt' if 'txt' in accepted else ''}, .qbo, .qfx or .ofx. The converted file is "
                ".csv.",
                "extension",
            )
        )
    size = _size_problem(data, "The converted copy is split by date range into files under the limit.")
    if size:
        problems.append(size)

    table = read_table(text)
    if table.error:
        problems.append(Problem(len(table.records) + 1, ERROR, table.error, "unreadable_row"))
    if table.truncated:
        problems.append(
            Problem(
                None,
                ERROR,
                "The file has too many rows for one upload; I read the first part only. Download a shorter date range.",
                "too_many_rows",
            )
        )
    if not table.error and not any(not r.blank for r in table.records):
        problems.append(Problem(None, ERROR, "The file has no rows. " + EXPORT_INSTEAD, "empty"))
        report.problems = problems
        return _finish(report)

    ex = extract(table, hint, filename=name.display, region=region)
    if not ex.fatal:
        problems += validate.check(table, ex, encoding)
    problems += ex.problems
    order = ex.order.order if ex.order else None
    if ex.order and ex.order.order is None:
        report.needs_date_order = ex.order.ask
    out_order = _output_order(region)
    txs = ex.transactions
    usable = [i for i in ex.rows if i.usable and i.amount is not None]
    source = None
    if not ex.fatal:
        source = _csv_source(text, table, ex, order)
    if txs:
        problems += duplicates.exact_copies(txs)
        files, more = _converted(txs, name.stem, out_order, last_booked, "rows")
        report.converted = files
        problems += more
    elif not ex.fatal and order is not None and not usable:
        problems.append(
            Problem(
                None, ERROR, "I couldn't read any transactions from this file, so there is nothing to convert.", "no_transactions"
            )
        )
    layout = ex.layout
    check = None
    if source is not None and order is not None:
        left_out = {p.row for p in problems if p.row is not None and p.code in verify.LEFT_OUT_CODES}
        left_out |= {second for _, second in ex.joined}
        check = _check(report, problems, source, out_order, left_out, last_booked, "rows")
    report.summary = {
        "rows": len(txs) if order is not None else len(usable),
        **_date_span(txs),
        **_totals([i.amount for i in usable] if order is None else [t.amount for t in txs]),
        "date_order": order,
        "output_date_format": "dd/MM/yyyy" if out_order == "DMY" else "MM/dd/yyyy",
        "delimiter": table.delimiter,
        "decimal_separator": ex.decimal_sep,
        "header_row": layout.header_row,
        "columns": {
            role: layout.name(getattr(layout, role))
            for role in ("date", "description", "amount", "debit", "credit")
            if getattr(layout, role) is not None
        },
        "size": len(data),
        "encoding": label(encoding),
        "sign_convention": ex.convention.to_dict() if ex.convention else None,
        "date_order_reason": ex.date_reason or None,
        "description_column": layout.name(layout.description) if layout.description is not None else None,
        "description_extra_columns": [layout.name(i) for i in layout.fold],
        "source": source.to_dict() if source is not None else None,
        "check": check.to_dict() if check is not None else None,
    }
    report.problems = problems
    return _finish(report)


# ---------------------------------------------------------------------------- OFX / QFX / QBO
def _ofx_report(name, data, notes, last_booked, region) -> UploadReport:
    ext = name.ext if name.ext in OFX_EXTENSIONS else "ofx"
    report = UploadReport(ok=False, file_type=ext, filename=name.display)
    problems = list(notes)
    if name.ext not in OFX_EXTENSIONS:
        shown = f".{name.ext}" if name.ext else "no extension"
        problems.append(
            Problem(
                None,
                ERROR,
                f"This is a Web Connect/OFX file but it has {shown}; QuickBooks decides by "
                "the name, so rename it to .qbo (or .ofx), or upload the converted CSV.",
                "extension",
            )
        )
    size = _size_problem(
        data, "Download shorter date ranges from your bank, or upload the converted CSV files (split by date range)."
    )
    if size:
        problems.append(size)
    res = analyse_ofx(data, ext)
    report.encoding = res.encoding
    problems += res.problems
    out_order = _output_order(region)
    all_txs: List[Transaction] = []
    accounts = []
    for index, st in enumerate(res.statements):
        all_txs += st.transactions
        accounts.append(
            {
                "type": st.kind,
                "account": st.masked,
                "account_type": st.account_type,
                "bank_id": st.bank_id,
                "currency": st.currency,
                "rows": len(st.transactions),
                **_date_span(st.transactions),
                **_totals([t.amount for t in st.transactions]),
            }
        )
        if st.transactions:
            suffix = (
                f"_{st.account_id[-4:]}"
                if len(res.statements) > 1 and st.account_id
                else (f"_{index + 1}" if len(res.statements) > 1 else "")
            )
            safe_suffix = "".join(ch for ch in suffix if ch.isalnum() or ch == "_")
            files, more = _converted(st.transactions, name.stem + safe_suffix, out_order, last_booked, "transactions")
            report.converted += files
            problems += more
    check = None
    source = None
    if res.readable and not any(p.code == "investment" for p in problems):
        source = verify.read_ofx(data)
        if source.items or report.converted:
            check = _check(report, problems, source, out_order, set(res.left_out), last_booked, "transactions")
    if res.readable and res.statements and not all_txs and not any(p.severity == ERROR for p in problems):
        problems.append(Problem(None, WARNING, "The statement has no transactions in it.", "no_transactions"))
    if report.converted:
        problems.append(
            Problem(
                None,
                INFO,
                "The converted CSV has no FITIDs, so QuickBooks can't spot duplicates as "
                "well as with the original file. Upload the original if it has no errors.",
                "csv_from_ofx",
            )
        )
    report.summary = {
        "rows": len(all_txs),
        **_date_span(all_txs),
        **_totals([t.amount for t in all_txs]),
        "accounts": accounts,
        "ofx_version": res.version,
        "intu_bid": res.intu_bid,
        "output_date_format": "dd/MM/yyyy" if out_order == "DMY" else "MM/dd/yyyy",
        "size": len(data),
        "sign_convention": {"code": "signed", "description": "OFX amounts are signed: negative is money out."},
        "date_order_reason": "OFX dates are written year, month, day (20240314).",
        "description_column": "NAME (with MEMO when it adds something)",
        "source": source.to_dict() if source is not None else None,
        "check": check.to_dict() if check is not None else None,
    }
    report.problems = problems
    return _finish(report)
