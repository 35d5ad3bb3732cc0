"""Property tests for the manual upload assistant (hypothesis, deterministic).

* generated transactions written in many bank layouts come back unchanged in the converted CSV;
* the converted CSV re-validates clean and converts to itself (round trip);
* the amount parser agrees with Decimal on every format banks use;
* analyse() never raises, whatever the bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from decimal import Decimal
from typing import Callable, Dict, List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.upload import analyse
from bot.upload.amounts import parse_amount
from bot.upload.report import UploadReport

settings.register_profile(
    "upload",
    derandomize=True,  # the same examples on every run: no flaky CI
    database=None,  # nothing written to .hypothesis/
    deadline=None,
    max_examples=80,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("upload")

Tx = Tuple[dt.date, str, Decimal]

WORDS = [
    "Coffee",
    "Shop",
    "Payroll",
    "ACME",
    "Corp",
    "Rent",
    "Smith, John",
    'Joe\'s "Diner"',
    "Café",
    "Crème",
    "A&B",
    "#1234",
    "(refund)",
    "Visa",
    "Tesco",
    "Hydro-Québec",
    "Amazon.com*RT4",
    "Zelle",
    "50% off",
    "Ltd.",
    "co/op",
    "Müller",
    "Invoice",
    "INV-1001",
    "ATM",
    "Fee",
    "Transfer",
    "to",
    "from",
    "the",
]

descriptions = (
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join).filter(lambda s: sum(ch.isalpha() for ch in s) >= 2)
)
amounts = st.integers(min_value=-5_000_000, max_value=5_000_000).filter(lambda c: c != 0).map(lambda c: Decimal(c) / 100)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 12, 31))
transactions = st.lists(st.tuples(dates, descriptions, amounts), min_size=1, max_size=25)


# ---------------------------------------------------------------------------- layouts
def _csv(rows: List[List[str]], delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL, end: str = "\r\n") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator=end)
    writer.writerows(rows)
    return buf.getvalue()


def plain(d: Decimal) -> str:
    return f"{d:.2f}"


def grouped(d: Decimal) -> str:
    return f"{d:,.2f}"


def european(d: Decimal) -> str:
    return f"{d:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def mdy(day: dt.date) -> str:
    return f"{day.month:02d}/{day.day:02d}/{day.year}"


def dmy(day: dt.date, sep: str = "/") -> str:
    return f"{day.day:02d}{sep}{day.month:02d}{sep}{day.year}"


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def qbo_three(txs):
    rows = [["Date", "Description", "Amount"]] + [[mdy(d), s, plain(a)] for d, s, a in txs]
    return _csv(rows).encode(), "qbo3.csv", "MDY"


def qbo_four(txs):
    rows = [["Date", "Description", "Credit", "Debit"]]
    rows += [[mdy(d), s, plain(a) if a > 0 else "", plain(-a) if a < 0 else ""] for d, s, a in txs]
    return _csv(rows).encode(), "qbo4.csv", "MDY"


def chase(txs):
    rows = [["Details", "Posting Date", "Description", "Amount", "Type", "Balance", "Check or Slip #"]]
    balance = Decimal("1000")
    for d, s, a in txs:
        balance += a
        rows.append(
            ["DEBIT" if a < 0 else "CREDIT", mdy(d), s, plain(a), "ACH_DEBIT" if a < 0 else "ACH_CREDIT", plain(balance), "", ""]
        )
    return _csv(rows).encode(), "chase.csv", "MDY"


def euro_semicolon(txs):
    rows = [["Date", "Description", "Amount"]] + [[dmy(d, "."), s, european(a)] for d, s, a in txs]
    return _csv(rows, delimiter=";").encode("utf-8-sig"), "euro.csv", "DMY"


def dollars_parentheses(txs):
    def money(a: Decimal) -> str:
        return f"(${-a:,.2f})" if a < 0 else f"${a:,.2f}"

    rows = [["Date", "Description", "Amount"]] + [[d.isoformat(), s, money(a)] for d, s, a in txs]
    return _csv(rows, quoting=csv.QUOTE_ALL, end="\n").encode(), "dollars.csv", None


def wells_fargo(txs):
    rows = [[mdy(d), plain(a), "*", "", s] for d, s, a in txs]
    return _csv(rows, quoting=csv.QUOTE_ALL).encode(), "wf.csv", "MDY"


def capital_one_tsv(txs):
    rows = [["Transaction Date", "Posted Date", "Card No.", "Description", "Category", "Debit", "Credit"]]
    rows += [
        [d.isoformat(), d.isoformat(), "4821", s, "Other", plain(-a) if a < 0 else "", plain(a) if a > 0 else ""]
        for d, s, a in txs
    ]
    return _csv(rows, delimiter="\t").encode(), "capone.tsv.csv", None


def month_names_cr_dr(txs):
    rows = [["Date", "Description", "Amount", "Balance"]]
    for d, s, a in txs:
        suffix = "DR" if a < 0 else "CR"
        rows.append([f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year}", s, f"{abs(a):,.2f} {suffix}", "0.00 CR"])
    return _csv(rows).encode("cp1252", errors="replace"), "td.csv", None


def preamble_and_total(txs):
    text = "Account Name:,Business Checking\nAccount Number:,****1234\n\n"
    rows = [["Date", "Description", "Amount"]] + [[mdy(d), s, plain(a)] for d, s, a in txs]
    rows.append(["Total", "", plain(sum((a for _, _, a in txs), Decimal(0)))])
    return (text + _csv(rows, end="\n")).encode(), "preamble.csv", "MDY"


def uk_money_in_out(txs):
    rows = [["Date", "Description", "Money In", "Money Out", "Balance"]]
    for d, s, a in txs:
        rows.append(
            [f"{WEEKDAYS[d.weekday()]} {dmy(d)}", s, f"£{a:,.2f}" if a > 0 else "", f"£{-a:,.2f}" if a < 0 else "", "£0.00"]
        )
    return _csv(rows).encode(), "uk.csv", "DMY"


def pipes_trailing_minus(txs):
    rows = [["Date", "Description", "Amount"]]
    rows += [[d.strftime("%Y%m%d"), s, f"{-a:.2f}-" if a < 0 else plain(a)] for d, s, a in txs]
    return _csv(rows, delimiter="|").encode(), "pipes.csv", None


LAYOUTS: Dict[str, Callable] = {
    f.__name__: f
    for f in (
        qbo_three,
        qbo_four,
        chase,
        euro_semicolon,
        dollars_parentheses,
        wells_fargo,
        capital_one_tsv,
        month_names_cr_dr,
        preamble_and_total,
        uk_money_in_out,
        pipes_trailing_minus,
    )
}


def read_converted(report: UploadReport, kind: str = "all") -> List[Tx]:
    out: List[Tx] = []
    for f in report.converted:
        if f.kind != kind:
            continue
        rows = list(csv.reader(io.StringIO(f.content.decode("utf-8"))))
        assert rows[0] == ["Date", "Description", "Amount"]
        for date_text, desc, amount in rows[1:]:
            out.append((dt.datetime.strptime(date_text, "%m/%d/%Y").date(), desc, Decimal(amount)))
    return out


def expected(txs, layout: str) -> Counter:
    if layout == "month_names_cr_dr":  # written as cp1252 with replacement
        txs = [(d, s.encode("cp1252", errors="replace").decode("cp1252"), a) for d, s, a in txs]
    return Counter(txs)


@settings(PROFILE, max_examples=150)
@given(txs=transactions, layout=st.sampled_from(sorted(LAYOUTS)))
def test_every_layout_converts_to_the_same_transactions(txs, layout):
    data, name, order = LAYOUTS[layout](txs)
    report = analyse(data, name, date_order=order)
    assert report.needs_date_order is None
    assert report.summary["rows"] == len(txs), [p.message for p in report.problems if p.severity == "error"]
    assert Counter(read_converted(report)) == expected(txs, layout)
    assert Decimal(report.summary["net"]) == sum((a for _, _, a in txs), Decimal(0))


@settings(PROFILE)
@given(txs=transactions, layout=st.sampled_from(sorted(LAYOUTS)))
def test_converted_csv_revalidates_clean(txs, layout):
    data, name, order = LAYOUTS[layout](txs)
    first = analyse(data, name, date_order=order)
    [converted] = first.converted
    again = analyse(converted.content, converted.filename, date_order="MDY")
    assert [p.message for p in again.problems if p.severity == "error"] == []
    assert again.ok
    [reconverted] = again.converted
    assert reconverted.content == converted.content
    assert reconverted.filename == converted.filename


@settings(PROFILE)
@given(txs=transactions, cut=dates)
def test_new_only_version_is_exactly_the_rows_after_last_booked(txs, cut):
    data, name, order = qbo_three(txs)
    report = analyse(data, name, date_order=order, last_booked=cut)
    newer = Counter(t for t in txs if t[0] > cut)
    older = [t for t in txs if t[0] <= cut]
    if older and newer:
        assert Counter(read_converted(report, "new_only")) == newer
    else:
        assert not any(f.kind == "new_only" for f in report.converted)
    assert any(p.code == "already_booked" for p in report.problems) == bool(older)


# ---------------------------------------------------------------------------- amounts
def _styles(d: Decimal) -> List[Tuple[str, str]]:
    neg, a = d < 0, abs(d)
    sign = "-" if neg else ""
    out = [
        (f"{d:.2f}", "."),
        (f"{sign}{a:,.2f}", "."),
        (f"{sign}{european(a)}", ","),
        (f"{sign}{european(a).replace('.', ' ')}", ","),
        (f"{sign}{a:,.2f}".replace(",", "'"), "."),
        (f"({a:,.2f})" if neg else f"{a:,.2f}", "."),
        (f"{a:.2f}-" if neg else f"{a:.2f}", "."),
        (f"{a:,.2f} {'DR' if neg else 'CR'}", "."),
        (f"{a:,.2f}{'Dr' if neg else 'Cr'}", "."),
        (f"{sign}${a:,.2f}", "."),
        (f"${sign}{a:.2f}", "."),
        (f"({'£'}{a:,.2f})" if neg else f"£{a:,.2f}", "."),
        (f"{sign}{european(a)} €", ","),
        (f"CAD {sign}{a:.2f}", "."),
        (f"{sign}{a:.2f} USD", "."),
        (f"\u2212{a:.2f}" if neg else f"+{a:.2f}", "."),
        (f"  {d:.2f}\u00a0", "."),
    ]
    if a == a.to_integral_value():
        out.append((f"{sign}{int(a):,}", "."))
        out.append((f"{sign}{int(a):,}".replace(",", "."), ","))
    return out


@settings(PROFILE, max_examples=200)
@given(
    cents=st.integers(min_value=-(10**13) + 1, max_value=10**13 - 1).filter(lambda c: c != 0)
    | st.integers(min_value=-100_000, max_value=100_000).filter(lambda c: c != 0)
)
def test_amount_parser_agrees_with_decimal(cents):
    d = Decimal(cents) / 100
    for text, sep in _styles(d):
        parsed = parse_amount(text, sep)
        assert parsed is not None, text
        assert parsed.value == d, (text, parsed.value)


@settings(PROFILE, max_examples=300)
@given(st.text(max_size=80))
def test_amount_parser_never_raises(text):
    parsed = parse_amount(text)
    if parsed is not None:
        assert parsed.value.is_finite() and abs(parsed.value) < Decimal("1e12")


# ---------------------------------------------------------------------------- hostile bytes
PREFIXES = [
    b"",
    b"Date,Description,Amount\n",
    b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n"
    b"COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX>",
    b'<?xml version="1.0"?>\n<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>',
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"!Type:Bank\n",
    b"PK\x03\x04",
]
CSVISH = st.text(alphabet=st.sampled_from(list("0123456789/-.,;\t\"'()$£€ \nCRDRabcMarMon\r")), max_size=400)


@settings(PROFILE, max_examples=400)
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=2000) | CSVISH.map(lambda s: s.encode("utf-8")),
    name=st.sampled_from(["x.csv", "x.qbo", "x.ofx", "x.qfx", "x.txt", "x", "x.xlsx", "../x.CSV"]),
    order=st.sampled_from([None, "MDY", "DMY", "YMD", "bogus"]),
    booked=st.none() | dates,
)
def test_analyse_never_raises(prefix, body, name, order, booked):
    report = analyse(prefix + body, name, date_order=order, last_booked=booked)
    assert isinstance(report, UploadReport)
    assert report.ok == (not report.errors)
    json.dumps(report.to_dict())
    assert isinstance(report.plain_text(), str)
    for f in report.converted:
        f.content.decode("utf-8")


# ---------------------------------------------------------------------------- invariants: nothing lost, no sign flipped
def _checked(report: UploadReport) -> None:
    """The independent check ran on the copy and passed; the report's totals are the source's."""
    check, source = report.summary["check"], report.summary["source"]
    assert check["passed"] is True, check
    assert (source["rows"], source["money_in"], source["money_out"]) == (
        report.summary["rows"],
        report.summary["money_in"],
        report.summary["money_out"],
    )


def _ofx_value(text: str, style: int) -> str:
    """A NAME/MEMO value written the ways banks write them: plain, escaped, CDATA, or empty."""
    if style == 0:
        return ""
    if style == 1:
        return f"<![CDATA[{text}]]>"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


ofx_shapes = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans(), st.booleans()), min_size=25, max_size=25)


@settings(PROFILE, max_examples=120)
@given(
    txs=transactions,
    shapes=ofx_shapes,
    charset=st.sampled_from(["1252", "8859-1", "ISO-8859-1", "UTF-8", "NONE", "WINDOWS-1252"]),
    one_line=st.booleans(),
)
def test_generated_ofx_round_trips_with_empty_and_unclosed_elements(txs, shapes, charset, one_line):
    head = (
        f"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:{charset}\n"
        "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n\n<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0"
        "<SEVERITY>INFO</STATUS><DTSERVER>20240101<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1><BANKMSGSRSV1>"
        "<STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS><STMTRS><CURDEF>USD<BANKACCTFROM>"
        "<BANKID>121000248<ACCTID>12345678<ACCTTYPE>CHECKING</BANKACCTFROM><BANKTRANLIST><DTSTART>20000101"
        "<DTEND>20301231"
    )
    sep = "" if one_line else "\n"
    body = []
    for n, ((day, desc, amount), (name_style, memo_style, close, checknum)) in enumerate(zip(txs, shapes)):
        parts = [
            f"<STMTTRN><TRNTYPE>{'DEBIT' if amount < 0 else 'CREDIT'}",
            f"<DTPOSTED>{day:%Y%m%d}120000",
            f"<TRNAMT>{amount}",
            f"<FITID>ID{n}",
            f"<NAME>{_ofx_value(desc, name_style)}",
        ]
        if checknum:
            parts.append("<CHECKNUM>" + ("0" if n % 2 else ""))
        parts.append(f"<MEMO>{_ofx_value(desc, memo_style)}")
        if close:
            parts.append("</STMTTRN>")
        body.append(sep.join(parts))
    tail = "</BANKTRANLIST><LEDGERBAL><BALAMT>0.00<DTASOF>20240101</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    text = head + sep + sep.join(body) + sep + tail
    data = text.encode("utf-8" if charset == "UTF-8" else "cp1252", errors="replace")
    report = analyse(data, "gen.qfx")
    assert report.ok, [p.message for p in report.errors]
    _checked(report)
    got = read_converted(report)
    assert Counter((d, a) for d, _, a in got) == Counter((d, a) for d, _, a in txs)
    assert not any("Check 0" in s for _, s, _ in got)
    for (_, desc, _), (name_style, memo_style, _, _), (_, got_desc, _) in zip(txs, shapes, got):
        if name_style or memo_style:  # the payee survives CDATA and escaping
            assert desc.encode("cp1252", errors="replace").decode("cp1252") in got_desc or desc in got_desc


def crdr_column(txs):
    rows = [["Date", "Description", "Amount", ""]]
    rows += [[dmy(d), s, f"£{abs(a):,.2f}" if a < 0 else f"+ £{a:,.2f}", "DR" if a < 0 else "CR"] for d, s, a in txs]
    return _csv(rows).encode(), "card.csv", "DMY"


def af_bij(txs):
    rows = [["Datum", "Naam / Omschrijving", "Rekening", "Af Bij", "Bedrag (EUR)"]]
    rows += [[dmy(d, "-"), s, "NL91INGB0001234567", "Af" if a < 0 else "Bij", european(abs(a))] for d, s, a in txs]
    return _csv(rows, delimiter=";").encode("utf-8-sig"), "ing.csv", "DMY"


def sgd_columns(txs):
    text = "Account details for:,360 Account 123-45678-9\n\nTransaction History\n"
    rows = [["Transaction date", "Value date", "Description", "Withdrawals (SGD)", "Deposits (SGD)"]]
    rows += [[dmy(d), dmy(d), s, grouped(-a) if a < 0 else "", grouped(a) if a > 0 else ""] for d, s, a in txs]
    return (text + _csv(rows)).encode(), "ocbc.csv", "DMY"


def two_line(txs):
    rows = [["Date", "Description", "Amount"]]
    for d, s, a in txs:
        rows.append([mdy(d), "CARD PURCHASE", plain(a)])
        rows.append(["", s, ""])
    return _csv(rows).encode(), "wrapped.csv", "MDY"


CONVENTIONS = {f.__name__: f for f in (crdr_column, af_bij, sgd_columns, two_line)}


def expected_descriptions(layout: str, desc: str) -> str:
    return f"CARD PURCHASE {desc}" if layout == "two_line" else desc


@settings(PROFILE, max_examples=120)
@given(txs=transactions, layout=st.sampled_from(sorted(CONVENTIONS)))
def test_sign_conventions_and_layouts_round_trip(txs, layout):
    data, name, order = CONVENTIONS[layout](txs)
    report = analyse(data, name, date_order=order)
    assert report.needs_date_order is None
    assert report.summary["rows"] == len(txs), [p.message for p in report.errors]
    _checked(report)
    assert Counter(read_converted(report)) == Counter((d, expected_descriptions(layout, s), a) for d, s, a in txs)


@settings(PROFILE, max_examples=100)
@given(txs=transactions, payment_at=st.integers(0, 24))
def test_card_exports_with_positive_purchases_come_out_as_money_out(txs, payment_at):
    purchases = [(d, s, -abs(a)) for d, s, a in txs]
    day = txs[0][0]
    payment = (day, "PAYMENT - THANK YOU", Decimal("500.00"))
    purchases.insert(payment_at % (len(purchases) + 1), payment)
    rows = [["Date", "Description", "Card Member", "Amount"]]
    rows += [[mdy(d), s, "J SMITH", plain(-a)] for d, s, a in purchases]  # purchases positive, payment negative
    report = analyse(_csv(rows).encode(), "amex.csv", date_order="MDY")
    assert report.summary["sign_convention"]["code"] == "card_positive"
    _checked(report)
    assert Counter(read_converted(report)) == Counter(purchases)


@settings(PROFILE, max_examples=150)
@given(txs=transactions, layout=st.sampled_from(sorted(LAYOUTS)))
def test_every_conversion_passes_the_independent_check(txs, layout):
    data, name, order = LAYOUTS[layout](txs)
    report = analyse(data, name, date_order=order)
    _checked(report)
