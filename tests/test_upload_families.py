"""The families of failures seen on real bank files, each in several shapes written here (not copies of the
files that showed them): OFX with empty and unclosed elements, sign conventions, headings and layouts, character
sets, date order evidence, descriptions; and the check every converted copy passes before it is offered.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import List, Optional, Sequence

import pytest

from bot.upload import analyse, ofx_reader, signs
from bot.upload import columns as cols
from bot.upload.report import UploadReport


def rows_of(report: UploadReport) -> List[List[str]]:
    out: List[List[str]] = []
    for f in report.converted:
        if f.kind == "all":
            table = list(csv.reader(io.StringIO(f.content.decode("utf-8"))))
            assert table[0] == ["Date", "Description", "Amount"]
            out += table[1:]
    return out


def money(report: UploadReport):
    s = report.summary
    return s["rows"], s["money_in"], s["money_out"]


def codes(report: UploadReport, severity: Optional[str] = None):
    return {p.code for p in report.problems if severity is None or p.severity == severity}


def checked(report: UploadReport) -> UploadReport:
    """Every conversion that was offered passed the independent check, and it says so."""
    if report.converted:
        assert report.summary["check"]["passed"] is True, report.summary["check"]
        src = report.summary["source"]
        assert (src["rows"], src["money_in"], src["money_out"]) == money(report)
    return report


# ---------------------------------------------------------------------------- OFX: empty and unclosed elements
HEADER_V1 = (
    "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\nCHARSET:{charset}\r\n"
    "COMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
)
HEAD = (
    "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS><DTSERVER>20240401<LANGUAGE>ENG"
    "<INTU.BID>10898</SONRS></SIGNONMSGSRSV1>\n<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO"
    "</STATUS><STMTRS><CURDEF>USD<BANKACCTFROM><BANKID>121000248<ACCTID>12345678<ACCTTYPE>CHECKING"
    "</BANKACCTFROM>\n<BANKTRANLIST><DTSTART>20240101<DTEND>20240331\n"
)
TAIL = "</BANKTRANLIST><LEDGERBAL><BALAMT>100.00<DTASOF>20240331</LEDGERBAL></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"


def trn(i: int, name: str = None, memo: str = None, close: bool = True, extra: str = "") -> str:
    name = f"SHOP {i}" if name is None else name
    memo = f"memo {i}" if memo is None else memo
    amount = f"{'-' if i % 3 else ''}{i}.{i % 100:02d}"
    return (
        f"<STMTTRN>\n<TRNTYPE>{'DEBIT' if i % 3 else 'CREDIT'}\n<DTPOSTED>2024{(i % 3) + 1:02d}{(i % 28) + 1:02d}"
        f"120000\n<TRNAMT>{amount}\n<FITID>F{i:05d}\n<NAME>{name}\n{extra}<MEMO>{memo}\n" + ("</STMTTRN>\n" if close else "")
    )


def ofx_file(transactions: Sequence[str], charset: str = "1252") -> bytes:
    return (HEADER_V1.format(charset=charset) + HEAD + "".join(transactions) + TAIL).encode("cp1252")


def expected_totals(numbers: Sequence[int]):
    amounts = [Decimal(f"{'-' if i % 3 else ''}{i}.{i % 100:02d}") for i in numbers]
    return (
        len(amounts),
        f"{sum((a for a in amounts if a > 0), Decimal(0)):.2f}",
        f"{-sum((a for a in amounts if a < 0), Decimal(0)):.2f}",
    )


def test_the_106_transaction_file_with_an_empty_name_at_32_keeps_every_transaction():
    data = ofx_file([trn(i, name="" if i == 32 else None) for i in range(1, 107)])
    report = checked(analyse(data, "statement.ofx"))
    assert report.ok and money(report) == expected_totals(range(1, 107))
    assert len(rows_of(report)) == 106
    assert "106 transactions" in report.plain_text()
    memo_only = [r for r in rows_of(report) if r[1] == "memo 32"]
    assert memo_only, "the transaction with the empty NAME keeps its memo as the description"


@pytest.mark.parametrize(
    "shape",
    [
        "empty name, memo and checknum here and there",
        "no </STMTTRN> end tags at all",
        "empty <NAME></NAME> and <NAME/>",
        "unknown empty and aggregate bank tags",
        "empty element last before the end tag",
    ],
)
def test_empty_and_unclosed_elements_anywhere(shape):
    n = 40
    txs = []
    for i in range(1, n + 1):
        if shape.startswith("empty name"):
            txs.append(
                trn(
                    i,
                    name="" if i % 7 == 0 else None,
                    memo="" if i % 5 == 0 else None,
                    extra="<CHECKNUM>\n" if i % 4 == 0 else "",
                )
            )
        elif shape.startswith("no </STMTTRN>"):
            txs.append(trn(i, close=False))
        elif shape.startswith("empty <NAME>"):
            t = trn(i)
            if i % 2:
                t = t.replace(f"<NAME>SHOP {i}\n", "<NAME></NAME>\n" if i % 4 == 1 else "<NAME/>\n")
            txs.append(t)
        elif shape.startswith("unknown"):
            txs.append(trn(i, extra="<INTU.XTRA>\n<BANK.EXT><EXT.REF>R1</EXT.REF></BANK.EXT>\n" if i % 3 == 0 else ""))
        else:
            txs.append(trn(i).replace("</STMTTRN>", "<SIC>\n<PAYEEID>\n</STMTTRN>") if i % 2 else trn(i, memo=""))
    report = checked(analyse(ofx_file(txs), "statement.qfx"))
    assert report.ok, [p.message for p in report.errors]
    assert money(report) == expected_totals(range(1, n + 1))


def test_ofx_2_xml_with_empty_elements_and_an_sgml_body():
    body = HEAD + "".join(trn(i, name="" if i == 2 else None) for i in range(1, 6)) + TAIL
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<?OFX OFXHEADER="200" VERSION="203" '
        'SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n' + body
    )
    report = checked(analyse(xml.encode(), "card.ofx"))
    assert report.ok and money(report) == expected_totals(range(1, 6))
    assert report.summary["ofx_version"] == 203


def test_cdata_payees_and_escaped_characters_are_kept():
    txs = [
        trn(1, name="<![CDATA[AT&T <Mobility>]]>"),
        trn(2, name="BEN &amp; JERRY&apos;S &lt;NYC&gt;"),
        trn(3, name="CHECK", extra="<CHECKNUM>0\n"),
        trn(4, name="CHECK", extra="<CHECKNUM>1042\n"),
    ]
    report = checked(analyse(ofx_file(txs), "x.qbo"))
    descs = [r[1] for r in rows_of(report)]
    assert descs[0] == "AT&T <Mobility> - memo 1"
    assert descs[1] == "BEN & JERRY'S <NYC> - memo 2"
    assert "Check 0" not in descs[2] and descs[2] == "CHECK - memo 3"
    assert descs[3] == "CHECK - memo 4 - Check 1042"


def test_a_name_cut_short_and_repeated_whole_in_the_memo_is_not_doubled():
    txs = [trn(1, name="AMAZON MARKETPLACE SEATTLE WA 98", memo="AMAZON MARKETPLACE SEATTLE WA 98109 ORDER 112")]
    assert rows_of(analyse(ofx_file(txs), "x.qfx"))[0][1] == "AMAZON MARKETPLACE SEATTLE WA 98109 ORDER 112"


# ---------------------------------------------------------------------------- the check before a copy is offered
def losing_tree(body):
    """A reader that loses every transaction after the 31st (what the library's parser did to a file with an
    empty <NAME> at transaction 32: the rest nested inside it, out of reach)."""
    root, stray = READ_TREE(body)
    for tranlist in root.iter("BANKTRANLIST"):
        for lost in tranlist.findall("STMTTRN")[31:]:
            tranlist.remove(lost)
    return root, stray


READ_TREE = ofx_reader.build_tree


def test_a_parser_that_loses_transactions_gets_no_copy_and_a_report_that_says_so(monkeypatch):
    data = ofx_file([trn(i, name="" if i == 32 else None) for i in range(1, 107)])
    monkeypatch.setattr(ofx_reader, "build_tree", losing_tree)
    report = analyse(data, "statement.ofx")
    assert report.summary["rows"] == 31  # what the broken parser saw
    assert not report.ok and report.converted == []
    assert "check_failed" in codes(report, "error")
    text = report.plain_text()
    assert text.splitlines()[0].startswith("I read 106 transactions in statement.ofx")
    failed = next(p.message for p in report.problems if p.code == "check_failed")
    assert "the copy has 31 transactions but your file has 106" in failed
    assert "money out is" in failed and "Upload the original file" in failed


def test_a_sign_lost_by_the_converter_is_caught(monkeypatch):
    """The CR/DR column bug, put back on purpose: the check refuses the copy."""
    monkeypatch.setattr(cols, "find_direction_column", lambda layout, data: None)
    monkeypatch.setattr(signs, "detect", lambda *a, **k: signs.Convention(signs.SIGNED, "Negative is money out."))
    data = (
        b'Date,Transaction,Amount,\n10/03/2024,PAYMENT RECEIVED,"+ \xc2\xa31,100.00",CR\n'
        b'08/03/2024,TESCO STORES,"\xc2\xa31,285.80",DR\n05/03/2024,AMAZON UK,"\xc2\xa3100.00",DR\n'
    )
    report = analyse(data, "card.csv", region="UK")
    assert report.converted == [] and "check_failed" in codes(report, "error")
    failed = next(p.message for p in report.problems if p.code == "check_failed")
    assert "money out is 0.00 in the copy but 1385.80 in your file" in failed


def test_rows_the_report_leaves_out_are_counted_not_hidden():
    data = b"Date,Description,Amount\n03/14/2024,a,-1.00\n03/15/2024,b,abc\n03/16/2024,c,2.00\n"
    report = analyse(data, "x.csv")
    assert report.summary["check"]["passed"] and report.summary["check"]["left_out"] == [3]
    assert "bad_amount" in codes(report, "error")
    left = next(p.message for p in report.problems if p.code == "left_out")
    assert "2 of the 3 rows" in left and "rows 3" in left


# ---------------------------------------------------------------------------- signs
SIGN_CASES = [
    (
        "CR/DR beside the amount, heading-less column",
        "card.csv",
        "UK",
        'Date,Transaction,Amount,\n10/03/2024,PAYMENT RECEIVED THANK YOU,"+ £1,100.00",CR\n'
        '08/03/2024,TESCO STORES,"£1,285.80",DR\n05/03/2024,AMAZON UK,"£100.00",DR\n',
        "marker_column",
        ("1100.00", "1385.80"),
    ),
    (
        "Debit/Credit column",
        "x.csv",
        "US",
        "Date,Description,Amount,Debit/Credit\n03/14/2024,Payroll,1200.00,Credit\n03/15/2024,Rent,900.00,Debit\n",
        "marker_column",
        ("1200.00", "900.00"),
    ),
    (
        "trailing and leading CR/DR in the cell",
        "x.csv",
        "US",
        "Date,Description,Amount\n03/14/2024,Payroll,CR 1200.00\n03/15/2024,Rent,900.00DR\n03/16/2024,Tea,4.50 Dr\n"
        '03/17/2024,Refund,"1,000.00 CR"\n',
        "marker_suffix",
        ("2200.00", "904.50"),
    ),
    (
        "card export, purchases positive, a payment row",
        "activity.csv",
        "US",
        "Date,Description,Card Member,Amount\n03/14/2024,DELTA AIR,J SMITH,412.30\n"
        "03/15/2024,AUTOPAY PAYMENT - THANK YOU,J SMITH,-1250.00\n03/16/2024,UBER,J SMITH,28.40\n",
        "card_positive",
        ("1250.00", "440.70"),
    ),
    (
        "card export named so, payment without 'thank you'",
        "visa_statement.csv",
        "US",
        "Posted Date,Payee,Amount\n03/14/2024,Coffee Shop,4.50\n03/15/2024,Online Payment,-500.00\n03/16/2024,Hotel,210.00\n",
        "card_positive",
        ("500.00", "214.50"),
    ),
    (
        "plus for money in, no sign for money out",
        "x.csv",
        "US",
        "Date,Description,Amount\n03/14/2024,Refund,+12.00\n03/15/2024,Shop,45.00\n03/16/2024,Shop2,5.00\n",
        "plus_in",
        ("12.00", "50.00"),
    ),
    (
        "parentheses",
        "x.csv",
        "US",
        'Date,Description,Amount\n03/14/2024,Shop,"(1,045.00)"\n03/15/2024,Pay,"2,000.00"\n',
        "signed",
        ("2000.00", "1045.00"),
    ),
    (
        "Dutch Af/Bij",
        "ing.csv",
        "NL",
        '"Datum","Naam / Omschrijving","Rekening","Af Bij","Bedrag (EUR)","Mededelingen"\n'
        '"05-03-2024","Albert Heijn","NL91INGB0001234567","Af","23,45","Pasvolgnr 001"\n'
        '"06-03-2024","Werkgever BV","NL91INGB0001234567","Bij","2.500,00","Salaris maart"\n',
        "marker_column",
        ("2500.00", "23.45"),
    ),
    (
        "German Soll/Haben S/H",
        "umsaetze.csv",
        "DE",
        "Buchungstag;Valuta;Auftraggeber / Empfänger;Verwendungszweck;Betrag;Soll/Haben\n"
        "02.03.2018;02.03.2018;REWE Markt;Einkauf;54,12;S\n05.03.2018;05.03.2018;ACME GmbH;Gehalt;3.412,55;H\n",
        "marker_column",
        ("3412.55", "54.12"),
    ),
]


@pytest.mark.parametrize("label,name,region,text,convention,in_out", SIGN_CASES, ids=[c[0] for c in SIGN_CASES])
def test_sign_conventions_are_detected_and_stated(label, name, region, text, convention, in_out):
    report = checked(analyse(text.encode("utf-8"), name, region=region))
    assert report.converted, [p.message for p in report.errors]
    assert (report.summary["money_in"], report.summary["money_out"]) == in_out
    assert report.summary["sign_convention"]["code"] == convention
    assert report.summary["sign_convention"]["description"]


def test_a_bank_account_with_payments_going_out_is_not_taken_for_a_card():
    text = (
        "Date,Description,Amount\n03/14/2024,CARD PAYMENT TO TESCO,-45.00\n03/15/2024,BILL PAYMENT HYDRO,-80.00\n"
        "03/16/2024,SALARY ACME,2000.00\n"
    )
    report = checked(analyse(text.encode(), "current_account.csv"))
    assert report.summary["sign_convention"]["code"] == "signed"
    assert (report.summary["money_in"], report.summary["money_out"]) == ("2000.00", "125.00")


def test_all_positive_with_nothing_saying_which_is_out_is_a_warning():
    report = analyse(b"Date,Description,Amount\n03/14/2024,a,1.00\n03/15/2024,b,2.00\n", "x.csv")
    assert report.summary["sign_convention"]["code"] == "unsigned"
    assert "sign_convention" in codes(report, "warning")


# ---------------------------------------------------------------------------- headings and layouts
@pytest.mark.parametrize(
    "out_name,in_name",
    [
        ("Withdrawals (SGD)", "Deposits (SGD)"),
        ("Debit Amount (£)", "Credit Amount (£)"),
        ("Paid out £", "Paid in £"),
        ("Lastschrift in CHF", "Gutschrift in CHF"),
        ("Débit euros", "Crédit euros"),
        ("Cargo (EUR)", "Abono (EUR)"),
        ("Money Out (USD)", "Money In (USD)"),
        ("Belastung CHF", "Gutschrift CHF"),
    ],
)
def test_money_headings_with_a_currency(out_name, in_name):
    text = (
        f'Account details for:,360 Account 123-45678-9\nAvailable Balance,"1,234.56"\n\n'
        f'Transaction date,Value date,Description,"{out_name}","{in_name}"\n'
        '03/04/2024,03/04/2024,NETS QR PAYMENT KOPITIAM,5.50,\n05/04/2024,05/04/2024,SALARY ACME PTE LTD,,"4,500.00"\n'
        "15/04/2024,16/04/2024,FAST PAYMENT TO JOHN,100.00,\n"
    )
    report = checked(analyse(text.encode("utf-8"), "ocbc.csv"))
    assert report.summary["header_row"] == 4
    assert (report.summary["money_in"], report.summary["money_out"]) == ("4500.00", "105.50")
    assert "preamble" in codes(report, "error") and "no_header" not in codes(report)


@pytest.mark.parametrize(
    "heading",
    [
        "Amount (EUR)",
        "Betrag (EUR)",
        "Montant (CHF)",
        "Importe (€)",
        "Bedrag EUR",
        "Amount in GBP",
        "Umsatz in EUR",
        "Importo (EUR)",
    ],
)
def test_amount_headings_with_a_currency(heading):
    text = f"Date;Description;{heading}\n13/03/2024;Shop;-45,20\n14/03/2024;Pay;2.100,00\n"
    report = checked(analyse(text.encode("utf-8"), "x.csv"))
    assert report.summary["columns"]["amount"] == heading
    assert (report.summary["money_in"], report.summary["money_out"]) == ("2100.00", "45.20")


def test_two_line_transactions_description_continues():
    text = "Date,Description,Amount\n03/14/2024,CARD PURCHASE,-12.50\n,STARBUCKS SEATTLE WA,\n03/16/2024,ATM,-40.00\n"
    report = checked(analyse(text.encode(), "x.csv"))
    assert rows_of(report) == [["03/14/2024", "CARD PURCHASE STARBUCKS SEATTLE WA", "-12.50"], ["03/16/2024", "ATM", "-40.00"]]
    assert "two_line" in codes(report, "info") and not codes(report, "error")


def test_two_line_transactions_amount_on_the_second_line():
    text = (
        "Date;Details;Debit;Credit\n14/03/2024;TRANSFER FROM;;\n;SAVINGS 1234;;500,00\n"
        "15/03/2024;RENT;900,00;\n16/03/2024;GROCER;\n;LONDON;12,00;\n"
    )
    report = checked(analyse(text.encode(), "x.csv"))
    assert rows_of(report) == [
        ["03/14/2024", "TRANSFER FROM SAVINGS 1234", "500.00"],
        ["03/15/2024", "RENT", "-900.00"],
        ["03/16/2024", "GROCER LONDON", "-12.00"],
    ]


def test_a_note_under_the_last_transaction_is_not_joined_to_it():
    text = "Date,Description,Amount\n03/14/2024,Shop,-1.00\nClosing balance,,100.00\n"
    report = analyse(text.encode(), "x.csv")
    assert rows_of(report) == [["03/14/2024", "Shop", "-1.00"]]


def test_a_real_heading_row_with_an_empty_cell_is_the_heading_row():
    text = (
        "Fecha;;Concepto;Importe (EUR);Saldo (EUR)\n13/03/2024;X1;Compra Mercadona;-45,20;1.200,00\n"
        "14/03/2024;X2;Nómina ACME;2.100,00;3.300,00\n"
    )
    report = checked(analyse(text.encode(), "x.csv"))
    assert report.summary["header_row"] == 1 and "no_header" not in codes(report) and "preamble" not in codes(report)
    assert rows_of(report)[1] == ["03/14/2024", "Nómina ACME", "2100.00"]


def test_unknown_headings_in_unknown_words_are_adopted_with_blank_cells():
    text = "Tarikh,Butiran,,Jumlah\n13/03/2024,Kedai Runcit,x,-45.20\n14/03/2024,Gaji Bulanan,y,2100.00\n"
    report = checked(analyse(text.encode(), "x.csv"))
    assert report.summary["header_row"] == 1 and "preamble" not in codes(report) and "no_header" not in codes(report)


def test_no_amount_column_names_the_heading_row_and_its_headings():
    text = "Date,Description,Something\n03/14/2024,Shop,n/a\n03/15/2024,Shop,n/a\n"
    report = analyse(text.encode(), "x.csv")
    message = next(p.message for p in report.problems if p.code == "no_amount_column")
    assert "The headings on row 1 are 'Date', 'Description', 'Something'" in message


# ---------------------------------------------------------------------------- character sets
@pytest.mark.parametrize(
    "charset",
    ["8859-1", "ISO-8859-1", "1252", "WINDOWS-1252", "CP1252", "LATIN1", "ISO8859-1", "UTF-8", "NONE", "USASCII", "windows-1252"],
)
def test_ofx_charset_spellings(charset):
    text = HEADER_V1.format(charset=charset) + HEAD + trn(1, name="CAFÉ MÜLLER") + trn(2) + TAIL
    data = text.encode("utf-8" if charset == "UTF-8" else "cp1252")
    report = checked(analyse(data, "x.qfx"))
    assert report.ok, [p.message for p in report.errors]
    assert rows_of(report)[0][1] == "CAFÉ MÜLLER - memo 1"


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
        lambda t: t.encode("utf-16"),
        lambda t: t.encode("utf-8"),  # UTF-8 bytes under a CHARSET:1252 header
    ],
)
def test_ofx_boms_and_utf8_labelled_1252(encode):
    text = HEADER_V1.format(charset="1252") + HEAD + trn(1, name="SQ *ECCO ¦ NATURA") + TAIL
    report = checked(analyse(encode(text), "x.qfx"))
    assert rows_of(report)[0][1] == "SQ *ECCO ¦ NATURA - memo 1"


def test_xml_ofx_declaring_windows_1252():
    text = (
        '<?xml version="1.0" encoding="windows-1252"?>\n<?OFX OFXHEADER="200" VERSION="211" SECURITY="NONE" '
        'OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n' + HEAD + trn(1, name="Crème") + TAIL
    )
    assert rows_of(checked(analyse(text.encode("cp1252"), "x.ofx")))[0][1] == "Crème - memo 1"


def test_an_ofx_that_really_cannot_be_read_says_what_to_do():
    report = analyse(HEADER_V1.format(charset="1252").encode() + b"nothing but words</OFX>", "x.qfx")
    message = report.errors[0].message
    assert "no <OFX> section" in message and "download the CSV format" in message
    assert "damaged" not in message


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252", "utf-8"])
def test_csv_boms_and_encodings(encoding):
    text = "Datum;Beschreibung;Betrag\n13.03.2024;Bäckerei Müller;-4,50\n14.03.2024;Gehalt;2100,00\n"
    report = checked(analyse(text.encode(encoding), "x.csv"))
    assert rows_of(report)[0] == ["03/13/2024", "Bäckerei Müller", "-4.50"]


# ---------------------------------------------------------------------------- dates
DATE_CASES = [
    (
        "German headings, dotted",
        "Buchungstag;Verwendungszweck;Betrag\n02.03.2018;REWE;-12,50\n05.03.2018;Gehalt;2500,00\n",
        "US",
        "DMY",
        "dots",
    ),
    (
        "Dutch headings, dashed",
        "Datum;Omschrijving;Bedrag\n02-03-2018;Albert Heijn;-12,50\n05-03-2018;Salaris;2500,00\n",
        "US",
        "DMY",
        "headings",
    ),
    (
        "French headings, slashes",
        "Date;Libellé;Montant\n02/03/2018;CB CARREFOUR;-45,20\n05/03/2018;VIR SALAIRE;2100,00\n",
        "US",
        "DMY",
        "headings",
    ),
    (
        "Swiss headings",
        "Buchungsdatum;Avisierungstext;Belastung;Gutschrift\n02.03.2018;Coop;12.50;\n05.03.2018;Lohn;;2500.00\n",
        "US",
        "DMY",
        "dots",
    ),
    (
        "Spanish headings",
        "Fecha,Concepto,Importe\n02/03/2018,Mercadona,-12.50\n05/03/2018,Nómina,2500.00\n",
        "US",
        "DMY",
        "headings",
    ),
    (
        "another date column decides",
        "Booking Date,Value Date,Description,Amount\n02/03/2018,02/03/2018,Shop,-12.50\n11/03/2018,13/03/2018,Pay,2500.00\n",
        "US",
        "DMY",
        "Value Date",
    ),
    ("region decides", "Date,Description,Amount\n02/03/2018,Shop,-12.50\n05/03/2018,Pay,2500.00\n", "UK", "DMY", "the UK"),
]


@pytest.mark.parametrize("label,text,region,order,why", DATE_CASES, ids=[c[0] for c in DATE_CASES])
def test_date_order_from_the_files_own_evidence(label, text, region, order, why):
    report = checked(analyse(text.encode("utf-8"), "x.csv", region=region))
    assert report.needs_date_order is None
    assert report.summary["date_order"] == order
    assert why in report.summary["date_order_reason"]
    assert report.summary["date_from"] == "2018-03-02"


def test_english_headings_with_only_ambiguous_dates_still_ask():
    report = analyse(b"Date,Description,Amount\n02/03/2018,Shop,-12.50\n05/03/2018,Pay,2500.00\n", "x.csv")
    assert report.needs_date_order and report.converted == []
    assert report.summary["source"]["rows"] == 2  # it still says what it read


# ---------------------------------------------------------------------------- descriptions
def test_description_is_never_a_transaction_id_an_iban_or_an_address():
    text = (
        "Transaction ID,Account,Date,Counterparty Address,Reference text,Amount\n"
        "tx_0000AbCdEf1,DE89370400440532013000,2024-03-14,1 King St London,Pret A Manger lunch,-4.85\n"
        "tx_0000AbCdEf2,DE89370400440532013000,2024-03-15,1 King St London,ACME salary March,2100.00\n"
        "tx_0000AbCdEf3,DE89370400440532013000,2024-03-16,1 King St London,Tesco groceries,-32.10\n"
    )
    report = checked(analyse(text.encode(), "x.csv"))
    assert [r[1] for r in rows_of(report)] == ["Pret A Manger lunch", "ACME salary March", "Tesco groceries"]
    assert report.summary["description_column"] == "Reference text"


def test_headerless_ids_are_not_descriptions():
    text = (
        "2024-03-14,tx_0000AbCdEf1,Pret A Manger,-4.85\n2024-03-15,tx_0000AbCdEf2,ACME Ltd salary,2100.00\n"
        "2024-03-16,tx_0000AbCdEf3,Tesco Stores,-32.10\n"
    )
    report = checked(analyse(text.encode(), "x.csv"))
    assert [r[1] for r in rows_of(report)] == ["Pret A Manger", "ACME Ltd salary", "Tesco Stores"]


def test_german_payee_and_purpose_not_the_own_iban():
    text = (
        "Auftragskonto;Buchungstag;Valutadatum;Buchungstext;Verwendungszweck;Beguenstigter/Zahlungspflichtiger;"
        "Kontonummer;BLZ;Betrag;Waehrung\n"
        "DE89370400440532013000;14.03.24;14.03.24;LASTSCHRIFT;Rechnung 4711;Stadtwerke Köln;DE02120300000000202051;"
        "BYLADEM1001;-89,90;EUR\n"
        "DE89370400440532013000;15.03.24;15.03.24;GUTSCHRIFT;Gehalt Maerz;ACME GmbH;DE02120300000000202051;"
        "BYLADEM1001;3.412,55;EUR\n"
    )
    report = checked(analyse(text.encode("utf-8"), "umsaetze.csv"))
    descs = [r[1] for r in rows_of(report)]
    assert descs[0].startswith("Stadtwerke Köln") or descs[0].startswith("Rechnung 4711")
    assert "Stadtwerke Köln" in descs[0] and "Rechnung 4711" in descs[0]
    assert not any("DE89" in d for d in descs)
    assert report.summary["date_order"] == "DMY"


# ---------------------------------------------------------------------------- more shapes of the same families
def test_card_export_with_pending_rows_an_unnamed_heading_and_cr_on_the_payment_only():
    text = (
        "Date Processed,Description,Amount,\nPending,L'OLILO LONDON GBR,£67.40,\n"
        '12-Dec-2019,ROYAL LONDON INSURANCE,"£1,183.23",\n12-Dec-2019,DELIVEROO.CO.UK,£18.89,\n'
        '02-Dec-2019,SAINSBURYS SACAT 0602,£8.20,\n02-Dec-2019,PAYMENT RECEIVED - THANK YOU,"+ £1,100.00",CR\n'
    )
    report = checked(analyse(text.encode("utf-8"), "statement.csv", region="UK"))
    assert report.summary["header_row"] == 1 and "no_header" not in codes(report)
    assert (report.summary["money_in"], report.summary["money_out"]) == ("1100.00", "1210.32")
    assert "pending" in codes(report, "error") and report.summary["check"]["left_out"] == []


def test_an_account_name_repeated_on_every_row_is_not_the_description():
    text = (
        "Produit;Monn.;Description;Date de comptabilisation;Description 1;Description 2;Description 3;"
        "N° de transaction;Débit;Crédit;Solde\n"
        "0123 45678901.23A;CHF;Compte personnel UBS;31.03.2019;Solde prix prestations;;;A01;10.00;;11'373.94\n"
        "0123 45678901.23A;CHF;Compte personnel UBS;28.02.2019;Virement postal;ASSOCIATION FOO-BAR;"
        "BVD DE QUELQUE-PART 1, 1201 GENEVE, CH;A02;;240.00;11'613.94\n"
        "0123 45678901.23A;CHF;Compte personnel UBS;27.04.2019;Ordre e-banking;REMB-CASH;CH - 1203 GENEVE;A03;"
        "200.00;;11'413.94\n"
    )
    report = checked(analyse(text.encode("utf-8"), "ubs.csv"))
    descs = [r[1] for r in rows_of(report)]
    assert descs == ["Solde prix prestations", "Virement postal - ASSOCIATION FOO-BAR", "Ordre e-banking - REMB-CASH"]
    assert report.summary["date_order"] == "DMY"


def test_sepa_purpose_is_what_the_description_shows():
    text = (
        '"Buchungstag";"Verwendungszweck";"Beguenstigter/Zahlungspflichtiger";"Betrag"\n'
        '"22.02.18";"EREF+RECHNR. 1005MREF+KD02CRED+DE20KD00SVWZ+02/2018 Ihre Rechnung";"Vodafone GmbH";"-36,99"\n'
    )
    report = checked(analyse(text.encode(), "umsatz.csv"))
    assert rows_of(report)[0][1] == "Vodafone GmbH - 02/2018 Ihre Rechnung"


def test_a_transfer_amount_beside_debit_and_credit_is_not_the_amount():
    text = "Transaction Date,Description,Credit Amount,Debit Amount,Transfer Amount\n05/13/2021,In,120,,\n05/14/2021,Out,,100,\n"
    report = checked(analyse(text.encode(), "x.csv"))
    assert (report.summary["money_in"], report.summary["money_out"]) == ("120.00", "100.00")


def test_an_amount_only_in_the_second_currency_column_is_checked_too():
    text = '"Transaction Date","Description 1","CAD$","USD$"\n3/28/2024,"Payroll",2450.00,\n3/25/2024,"US supplier",,-112.34\n'
    report = checked(analyse(text.encode(), "rbc.csv", region="CA"))
    assert (report.summary["money_in"], report.summary["money_out"]) == ("2450.00", "112.34")
