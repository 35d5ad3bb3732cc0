"""Manual upload assistant (``bot.upload``) on a corpus of realistic bank exports, good and broken.

Each corpus file's expectations: whether QuickBooks would take it as it is (``ok``), the detected
type, how many transactions were read, which problems (by code, with their spreadsheet rows) must
be reported, and what the converted CSV contains.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Dict, List

import pytest

from bot.upload import analyse
from bot.upload.limits import MAX_PROBLEMS, QBO_MAX_FILE_BYTES
from bot.upload.report import UploadReport

CORPUS = Path(__file__).parent / "fixtures" / "bank_exports"


def run(name: str, **kwargs) -> UploadReport:
    return analyse((CORPUS / name).read_bytes(), name, **kwargs)


def codes(report: UploadReport, severity: str = "error") -> Dict[str, List]:
    out: Dict[str, List] = {}
    for p in report.problems:
        if p.severity == severity:
            out.setdefault(p.code, []).append(p.row)
    return out


def converted_rows(report: UploadReport, kind: str = "all") -> List[List[str]]:
    rows: List[List[str]] = []
    for f in report.converted:
        if f.kind != kind:
            continue
        table = list(csv.reader(io.StringIO(f.content.decode("utf-8"))))
        assert table[0] == ["Date", "Description", "Amount"]
        rows += table[1:]
    return rows


# (file, kwargs, ok, file_type, rows, {error code: rows (None = any rows)}, warnings that must appear)
CASES = [
    ("clean_3col.csv", {}, True, "csv", 4, {}, []),
    ("chase_checking.csv", {}, False, "csv", 7, {"columns": [None]}, []),
    (
        "bofa_preamble.csv",
        {},
        False,
        "csv",
        4,
        {"preamble": [1, 2, 3, 4, 5], "not_transaction": [8], "columns": [None]},
        ["thousands"],
    ),
    ("wells_fargo_headerless.csv", {}, False, "csv", 6, {"columns": [None]}, ["no_header"]),
    ("capital_one_card.csv", {}, False, "csv", 6, {"columns": [None]}, []),
    ("amex.csv", {}, False, "csv", 5, {"columns": [None]}, []),
    ("barclays_uk.csv", {"region": "UK"}, False, "csv", 5, {"columns": [None]}, []),
    (
        "hsbc_uk_semicolon.csv",
        {"region": "UK"},
        False,
        "csv",
        4,
        {"delimiter": [None], "columns": [None], "header_names": [1, 1], "currency_symbol": [2, 3, 4, 5]},
        [],
    ),
    ("monzo.csv", {"region": "UK"}, False, "csv", 4, {"columns": [None]}, []),
    (
        "nationwide_uk_cp1252.csv",
        {"region": "UK"},
        False,
        "csv",
        4,
        {"preamble": [1, 2, 3], "header_names": [5, 5], "currency_symbol": [6, 7, 8, 9], "columns": [None]},
        ["encoding", "date_style"],
    ),
    ("rbc_canada.csv", {"region": "CA"}, False, "csv", 5, {"columns": [None], "header_names": [1]}, []),
    ("td_crdr.csv", {"region": "CA"}, False, "csv", 4, {"cr_dr": [2, 3, 4, 5], "columns": [None]}, []),
    ("european_semicolon.csv", {}, False, "csv", 4, {"delimiter": [None], "decimal_comma": [2, 3, 4, 5]}, []),
    ("parentheses_negatives.csv", {}, False, "csv", 4, {"parentheses": [2, 4, 5]}, []),
    ("currency_symbols.csv", {}, False, "csv", 4, {"currency_symbol": [2, 3, 4, 5]}, ["thousands"]),
    ("weekday_dates.csv", {"region": "UK"}, False, "csv", 4, {"date_unreadable": [2, 3, 4, 5]}, []),
    ("ambiguous_dates.csv", {}, True, "csv", 4, {}, []),
    ("zero_cells.csv", {}, False, "csv", 4, {"zero_cell": [2, 3, 4]}, []),
    ("both_credit_debit.csv", {}, False, "csv", 2, {"both_credit_debit": [3]}, []),
    ("running_balance.csv", {}, False, "csv", 3, {"columns": [None]}, []),
    ("trailer_totals.csv", {}, False, "csv", 3, {"not_transaction": [6, 7]}, ["blank_row"]),
    ("mixed_date_formats.csv", {}, False, "csv", 4, {"date_format": [3, 5]}, ["date_style"]),
    ("unquoted_comma.csv", {}, False, "csv", 2, {"column_count": [3]}, []),
    ("duplicates_in_file.csv", {}, True, "csv", 6, {}, ["duplicate_row"]),
    ("statement.qif", {}, False, "qif", None, {"rejected_type": [None]}, []),
    ("garbage.bin", {}, False, "binary", None, {"rejected_type": [None]}, []),
    ("statement.pdf", {}, False, "pdf", None, {"rejected_type": [None]}, []),
    ("statement.xlsx", {}, False, "xlsx", None, {"rejected_type": [None]}, []),
    ("chase_ofx102.ofx", {}, True, "ofx", 4, {}, []),
    ("citi_card.qfx", {}, True, "qfx", 3, {}, []),
    ("webconnect.qbo", {}, True, "qbo", 4, {}, []),
    ("webconnect_no_bid.qbo", {}, True, "qbo", 4, {}, ["intu_bid"]),
    ("duplicate_fitid.ofx", {}, True, "ofx", 4, {}, ["fitid_duplicate"]),
    ("broken_fields.ofx", {}, False, "ofx", 2, {"fitid_missing": [None], "bad_date": [None], "bad_amount": [None]}, []),
    ("truncated.qbo", {}, False, "qbo", 0, {"truncated": [None]}, []),
]


def test_corpus_is_big_enough():
    assert len(list(CORPUS.iterdir())) >= 15
    assert {c[0] for c in CASES} == {p.name for p in CORPUS.iterdir()}, "every corpus file has expectations"


@pytest.mark.parametrize("name,kwargs,ok,file_type,rows,errors,warnings", CASES, ids=[c[0] for c in CASES])
def test_corpus(name, kwargs, ok, file_type, rows, errors, warnings):
    report = run(name, **kwargs)
    found = codes(report)
    assert report.ok is ok, [p.message for p in report.errors]
    assert report.file_type == file_type
    if rows is not None:
        assert report.summary["rows"] == rows
    for code, expected_rows in errors.items():
        assert code in found, f"{code} missing; got {found}"
        if None not in expected_rows:
            assert found[code] == expected_rows, (code, found[code])
    if not errors:
        assert found == {}, found
    for code in warnings:
        assert code in codes(report, "warning"), codes(report, "warning")
    # whatever the file, the answer is JSON and the bot has something short to say
    json.dumps(report.to_dict())
    text = report.plain_text()
    assert text and len(text.splitlines()) <= 12
    if report.ok or report.summary.get("rows"):
        assert report.converted or report.needs_date_order


# ---------------------------------------------------------------------------- conversions
def test_chase_converted_file_is_three_clean_columns():
    report = run("chase_checking.csv")
    assert len(report.converted) == 1
    f = report.converted[0]
    assert f.filename == "chase_checking_2024-03-14_to_2024-03-28.csv"
    assert (f.date_from, f.date_to, f.rows) == (dt.date(2024, 3, 14), dt.date(2024, 3, 28), 7)
    rows = converted_rows(report)
    assert rows[0] == ["03/28/2024", "STARBUCKS STORE 04821 SEATTLE WA", "-6.45"]
    assert ["03/22/2024", "CHECK 1042", "-350.00"] in rows  # the check number is already in the text
    assert ["03/27/2024", "ACME PAYROLL PPD ID: 1234567890", "2450.00"] in rows
    info = " ".join(p.message for p in report.problems if p.code == "columns_used")
    assert "Balance" in info and "Check or Slip #" in info


def test_preamble_and_balance_lines_are_left_out():
    report = run("bofa_preamble.csv")
    rows = converted_rows(report)
    assert rows == [
        ["03/04/2024", "ZELLE PAYMENT FROM JOHN DOE Conf# abc123", "2500.00"],
        ["03/13/2024", "PG&E DES:WEB ONLINE ID:XXXXX12345 INDN:SMITH", "-184.56"],
        ["03/20/2024", "BKOFAMERICA ATM 03/20 #000004521 WITHDRWL AUSTIN TX", "-1000.00"],
        ["03/28/2024", "Online Banking transfer to SAV 1234 Confirmation# 99887", "-50.00"],
    ]
    assert report.summary["header_row"] == 7
    assert (report.summary["money_in"], report.summary["money_out"]) == ("2500.00", "1234.56")


def test_headerless_wells_fargo_folds_the_check_number():
    report = run("wells_fargo_headerless.csv")
    rows = converted_rows(report)
    assert ["03/25/2024", "CHECK # 1042", "-250.00"] in rows
    assert ["03/29/2024", "PURCHASE AUTHORIZED ON 03/27 SHELL OIL 12345 SAN JOSE CA S384087658263961 CARD 1234", "-45.00"] in rows
    assert report.summary["columns"] == {"date": "column 1", "description": "column 5", "amount": "column 2"}


def test_debit_credit_columns_say_which_is_money_out():
    report = run("capital_one_card.csv")
    rows = converted_rows(report)
    assert ["03/28/2024", "AMAZON.COM*RT4Y65", "-54.21"] in rows
    assert ["03/26/2024", "CAPITAL ONE MOBILE PYMT", "500.00"] in rows
    direction = [p for p in report.problems if p.code == "direction"]
    assert direction and "'Debit' as money out" in direction[0].message
    assert "check the direction" in direction[0].message
    assert any(p.code == "card_sign" for p in report.problems)


def test_uk_exports_convert_to_day_first_dates_when_asked():
    report = run("hsbc_uk_semicolon.csv", region="UK")
    assert converted_rows(report) == [
        ["28/03/2024", "TESCO STORES 2345", "-45.20"],
        ["26/03/2024", "ACME LTD SALARY", "1850.00"],
        ["21/03/2024", "THAMES WATER DD", "-38.50"],
        ["14/03/2024", "AMAZON MKTPLACE", "-19.99"],
    ]
    assert report.summary["output_date_format"] == "dd/MM/yyyy"
    assert "dd/MM/yyyy" in report.plain_text()
    us = run("hsbc_uk_semicolon.csv")
    assert converted_rows(us)[0] == ["03/28/2024", "TESCO STORES 2345", "-45.20"]


def test_monzo_uses_the_signed_amount_and_adds_notes():
    rows = converted_rows(run("monzo.csv", region="UK"))
    assert rows[0] == ["27/03/2024", "PRET A MANGER LONDON GBR", "-4.85"]
    assert rows[1] == ["25/03/2024", "ACME LTD SALARY - March salary", "2100.00"]


def test_rbc_joins_both_descriptions_and_the_cheque_number():
    rows = converted_rows(run("rbc_canada.csv"))
    assert ["03/28/2024", "Payroll Deposit - ACME CORP", "2450.00"] in rows
    assert ["03/20/2024", "Cheque - 117", "-800.00"] in rows
    assert ["03/14/2024", "Interac purchase - 1234 - TIM HORTONS #3421", "-4.85"] in rows


def test_cr_dr_suffixes_become_signs():
    rows = converted_rows(run("td_crdr.csv"))
    assert [r[2] for r in rows] == ["-4.50", "1200.00", "-112.34", "-300.00"]


def test_european_amounts_and_dotted_dates():
    report = run("european_semicolon.csv")
    assert report.summary["decimal_separator"] == ","
    assert report.summary["date_order"] == "DMY"
    assert converted_rows(report) == [
        ["03/28/2024", "Miete März", "-1250.00"],
        ["03/26/2024", "Gehalt ACME GmbH", "3412.55"],
        ["03/21/2024", "REWE Markt", "-54.12"],
        ["03/14/2024", "Stadtwerke Strom", "-89.90"],
    ]


def test_parentheses_message_names_the_row_and_the_fix():
    report = run("parentheses_negatives.csv")
    messages = [p.message for p in report.problems if p.code == "parentheses"]
    assert messages[0] == "Row 2: the amount '(45.00)' uses parentheses; QuickBooks needs -45.00"
    assert [r[2] for r in converted_rows(report)] == ["-45.00", "1500.00", "-89.99", "-12.00"]


def test_currency_symbols_and_codes_are_stripped():
    rows = converted_rows(run("currency_symbols.csv"))
    assert [r[2] for r in rows] == ["-1234.56", "2500.00", "-120.00", "15.25"]


def test_cp1252_file_is_read_and_reported():
    report = run("nationwide_uk_cp1252.csv", region="UK")
    assert report.encoding == "cp1252"
    rows = converted_rows(report)
    assert rows[0] == ["04/03/2024", "Café Nero Leeds", "-3.40"]
    assert rows[2] == ["15/03/2024", "ACME LTD", "1850.00"]


def test_zero_cells_are_errors_but_convert_cleanly():
    report = run("zero_cells.csv")
    assert [r[2] for r in converted_rows(report)] == ["1500.00", "-1200.00", "245.10", "-4.50"]


def test_rows_that_cannot_be_converted_say_so():
    report = run("unquoted_comma.csv")
    [problem] = [p for p in report.problems if p.code == "column_count"]
    assert problem.row == 3 and "Left out of the converted file" in problem.message
    assert len(converted_rows(report)) == 2


# ---------------------------------------------------------------------------- dates
def test_ambiguous_dates_ask_instead_of_guessing():
    report = run("ambiguous_dates.csv")
    ask = report.needs_date_order
    assert ask["example"] == "03/04/2024" and ask["row"] == 2
    assert ask["readings"] == {"MDY": "2024-03-04", "DMY": "2024-04-03"}
    assert ask["question"] == "Is 03/04/2024 March 4, 2024 or 3 April 2024?"
    assert report.converted == [] and report.summary["date_from"] is None
    assert report.plain_text().startswith("Before I convert")


@pytest.mark.parametrize("order,first", [("MDY", "03/04/2024"), ("DMY", "04/03/2024")])
def test_date_order_hint_decides(order, first):
    report = run("ambiguous_dates.csv", date_order=order)
    assert report.needs_date_order is None
    assert converted_rows(report)[0][0] == first


def test_order_is_inferred_from_a_day_over_12_and_explained():
    report = run("barclays_uk.csv")
    assert report.summary["date_order"] == "DMY"
    note = [p.message for p in report.problems if p.code == "date_order"]
    assert note == ["Dates are day/month/year: row 2 has '28/03/2024', which can only be 28 March 2024."]


def test_a_hint_that_contradicts_the_dates_is_overridden_with_a_note():
    report = run("barclays_uk.csv", date_order="MDY")
    assert report.summary["date_order"] == "DMY"
    assert any("You said the dates are month/day/year" in p.message for p in report.problems)


def test_weekday_prefixes_decide_the_order():
    report = run("weekday_dates.csv")
    assert report.needs_date_order is None
    assert converted_rows(report)[0] == ["03/04/2024", "Costa Coffee", "-3.40"]


# ---------------------------------------------------------------------------- duplicates
def test_rows_already_in_quickbooks_get_a_version_without_them():
    report = run("duplicates_in_file.csv", last_booked=dt.date(2024, 3, 2))
    [booked] = [p for p in report.problems if p.code == "already_booked"]
    assert booked.row == 2 and booked.severity == "warning"
    assert booked.message.startswith("Rows 2-4 are on or before 2024-03-02")
    fresh = [f for f in report.converted if f.kind == "new_only"]
    assert len(fresh) == 1 and fresh[0].rows == 3 and fresh[0].filename.startswith("duplicates_in_file_new_")
    assert converted_rows(report, "new_only")[0] == ["03/05/2024", "Client payment", "900.00"]
    assert [p.row for p in report.problems if p.code == "duplicate_row"] == [4]
    assert "without the rows that may already be in QuickBooks" in report.plain_text()


def test_ofx_transactions_already_booked():
    report = run("webconnect.qbo", last_booked=dt.date(2024, 3, 15))
    [booked] = [p for p in report.problems if p.code == "already_booked"]
    assert booked.message.startswith("Transactions 1-2 are on or before 2024-03-15")
    assert booked.row is None


# ---------------------------------------------------------------------------- OFX family
def test_qbo_summary():
    report = run("webconnect.qbo")
    s = report.summary
    assert s["intu_bid"] == "10898" and s["ofx_version"] == 102
    assert s["accounts"] == [
        {
            "type": "bank",
            "account": "****6789",
            "account_type": "CHECKING",
            "bank_id": "021000021",
            "currency": "USD",
            "rows": 4,
            "date_from": "2024-03-04",
            "date_to": "2024-03-28",
            "money_in": "1500.00",
            "money_out": "407.99",
            "net": "1092.01",
        }
    ]
    rows = converted_rows(report)
    assert rows[0] == ["03/04/2024", "OFFICE DEPOT #1234 - POS PURCHASE", "-45.99"]
    assert rows[2] == ["03/19/2024", "CHECK 1042", "-350.00"]
    assert "123456789" not in json.dumps(report.to_dict(include_content=False))  # account number masked


def test_qfx_credit_card_statement():
    report = run("citi_card.qfx")
    assert report.summary["accounts"][0]["type"] == "credit card"
    assert report.summary["accounts"][0]["account"] == "****4821"
    assert converted_rows(report)[0] == ["03/05/2024", "AMAZON.COM*RT4Y65 - AMZN.COM/BILL WA", "-54.21"]


def test_duplicate_fitids_are_named():
    report = run("duplicate_fitid.ofx")
    [dup] = [p for p in report.problems if p.code == "fitid_duplicate"]
    assert "Transaction 3" in dup.message and "A2" in dup.message and "transaction 2" in dup.message


def test_ofx_named_csv_and_csv_named_qbo():
    data = (CORPUS / "webconnect.qbo").read_bytes()
    report = analyse(data, "download.csv")
    assert report.file_type == "ofx" and "extension" in codes(report)
    report = analyse((CORPUS / "clean_3col.csv").read_bytes(), "download.qbo")
    assert report.file_type == "csv" and "extension" in codes(report)


def test_malformed_ofx_gets_a_message_not_an_exception():
    report = analyse(b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n<OFX><<<>>>", "x.qbo")
    assert not report.ok and codes(report) == {"truncated": [None]}  # no </OFX>: cut off, download again
    report = analyse(b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n<BANKTRANLIST><<<>>></OFX>", "x.qbo")
    assert not report.ok and codes(report) == {"unreadable": [None]}
    assert "<OFX>" in report.problems[0].message


# ---------------------------------------------------------------------------- types, sizes, encodings
def test_qif_explains_why_and_what_to_export():
    text = run("statement.qif").plain_text()
    assert "QIF" in text and "Web Connect (.QBO)" in text and "CSV" in text


@pytest.mark.parametrize("name", ["statement.xlsx", "statement.pdf"])
def test_other_formats_say_export_csv_or_qbo(name):
    text = run(name).plain_text()
    assert "CSV" in text


def test_txt_is_accepted_in_the_uk_only():
    data = (CORPUS / "clean_3col.csv").read_bytes()
    assert analyse(data, "export.txt", region="UK").ok
    assert "extension" in codes(analyse(data, "export.txt", region="US"))


def test_hard_input_limit(monkeypatch):
    monkeypatch.setenv("BANKFEED_UPLOAD_MAX_BYTES", "1000")
    report = analyse(b"Date,Description,Amount\n" + b"03/14/2024,Coffee,-4.50\n" * 100, "big.csv")
    assert codes(report) == {"too_large": [None]} and "up to 1 KB" in report.plain_text()


def test_empty_and_non_bytes_input():
    assert codes(analyse(b"", "x.csv")) == {"empty": [None]}
    assert codes(analyse(b"\r\n\r\n", "x.csv")) == {"empty": [None]}
    assert not analyse(None, "x.csv").ok  # type: ignore[arg-type]
    assert not analyse(b"Date,Description,Amount\n", None).ok  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding,expected", [("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("latin-1", "cp1252")])
def test_encodings_are_detected_and_reported(encoding, expected):
    text = "Date,Description,Amount\n03/14/2024,Crème brûlée café,-4.50\n"
    report = analyse(text.encode(encoding), "x.csv")
    assert report.encoding == expected
    assert converted_rows(report) == [["03/14/2024", "Crème brûlée café", "-4.50"]]


def test_formula_like_descriptions_are_defused():
    report = analyse(b'Date,Description,Amount\n03/14/2024,=HYPERLINK("http://x"),-4.50\n', "x.csv")
    assert converted_rows(report)[0][1] == 'HYPERLINK("http://x")'
    assert "formula" in codes(report, "warning")


def test_filenames_are_sanitised():
    report = analyse((CORPUS / "clean_3col.csv").read_bytes(), "../../etc/My Bank: März\x00.csv")
    name = report.converted[0].filename
    assert "/" not in name and "\x00" not in name and name.endswith(".csv")


def _big_csv(rows: int) -> bytes:
    lines = ["Date,Description,Amount"]
    start = dt.date(2023, 1, 1)
    for i in range(rows):
        day = start + dt.timedelta(days=i // 12)
        lines.append(f"{day:%m/%d/%Y},Card purchase {i:06d} at a shop with a long descriptive name,-{i % 500 + 1}.{i % 100:02d}")
    return ("\n".join(lines) + "\n").encode()


def test_huge_csv_is_split_by_date_range_under_the_limit():
    data = _big_csv(9000)
    assert len(data) > QBO_MAX_FILE_BYTES
    report = analyse(data, "huge.csv")
    assert "qbo_size" in codes(report)
    files = [f for f in report.converted if f.kind == "all"]
    assert len(files) >= 2
    assert all(len(f.content) <= QBO_MAX_FILE_BYTES for f in files)
    assert sum(f.rows for f in files) == 9000
    for earlier, later in zip(files, files[1:]):
        assert earlier.date_to < later.date_from  # no day split across files
    for f in files:
        assert f.filename == f"huge_{f.date_from.isoformat()}_to_{f.date_to.isoformat()}.csv"
        dates = {r[0] for r in csv.reader(io.StringIO(f.content.decode()))} - {"Date"}
        assert min(dt.datetime.strptime(d, "%m/%d/%Y").date() for d in dates) == f.date_from
    assert "split it by date" in report.plain_text()
    seen = sorted(r[1] for r in converted_rows(report))
    assert seen == sorted(f"Card purchase {i:06d} at a shop with a long descriptive name" for i in range(9000))


def test_problem_list_is_capped_with_a_count_of_the_rest():
    lines = ["Date,Description,Amount"] + [f"03/14/2024,Item {i},(${i + 1}.00)" for i in range(MAX_PROBLEMS)]
    report = analyse("\n".join(lines).encode(), "many.csv")
    assert len(report.problems) == MAX_PROBLEMS + 1
    assert report.problems[-1].code == "more"
    text = report.plain_text()
    assert "more problem" in text and len(text.splitlines()) <= 12


def test_to_dict_with_and_without_content():
    report = run("clean_3col.csv")
    full = report.to_dict()
    assert base64.b64decode(full["converted"][0]["content_base64"]) == report.converted[0].content
    slim = report.to_dict(include_content=False)
    assert slim["converted"][0]["content_omitted"] is True and "content_base64" not in slim["converted"][0]
    assert slim["message"] == report.plain_text()
    assert slim["counts"] == {"errors": 0, "warnings": 0, "info": 1}


def test_plain_text_puts_errors_first_and_counts_the_rest():
    report = run("nationwide_uk_cp1252.csv", region="UK")
    lines = report.plain_text().splitlines()
    assert lines[0].startswith("QuickBooks would reject nationwide_uk_cp1252.csv as it is")
    bullets = [line for line in lines if line.startswith("- ")]
    assert bullets[0].startswith("- The file has 6 columns")
    assert any("(same on 3 more rows)" in b for b in bullets)
    assert any(line.startswith("...and ") for line in lines)


def test_amount_values_are_decimal_exact():
    report = analyse(b"Date,Description,Amount\n03/14/2024,a,0.10\n03/14/2024,b,0.20\n03/15/2024,c,-0.30\n", "x.csv")
    assert report.summary["money_in"] == "0.30" and report.summary["money_out"] == "0.30"
    assert report.summary["net"] == "0.00"
    assert Decimal(report.summary["money_in"]) == Decimal("0.3")
