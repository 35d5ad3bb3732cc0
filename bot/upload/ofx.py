"""OFX 1.x (SGML) / 2.x (XML) files, including Quicken's .QFX and QuickBooks' Web Connect .QBO, read by
:mod:`bot.upload.ofx_reader` (tolerant of the empty and unclosed elements banks send) and checked against
the specification with ofxtools' models.

Checks: every transaction has a FITID and no FITID repeats (QuickBooks de-duplicates on it),
dates and amounts are valid, the statement says which account it is for, and a .QBO carries the
INTU.BID tag QuickBooks uses to recognise the bank.
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
import re
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, Optional, Tuple
from xml.etree import ElementTree as ET

from bot.upload import ofx_reader
from bot.upload.amounts import MAX_ABS
from bot.upload.encoding import looks_utf16
from bot.upload.extract import clean_text
from bot.upload.model import ERROR, INFO, WARNING, Problem, Transaction

logger = logging.getLogger(__name__)

MAX_DEPTH = 40
MAX_VALUE_CHARS = 2_000
_OFX_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")


@dataclass
class Statement:
    kind: str  # "bank" or "credit card"
    account_id: str = ""
    bank_id: str = ""
    account_type: str = ""
    currency: str = ""
    transactions: List[Transaction] = field(default_factory=list)

    @property
    def masked(self) -> str:
        return ("****" + self.account_id[-4:]) if self.account_id else ""


@dataclass
class OfxResult:
    problems: List[Problem] = field(default_factory=list)
    statements: List[Statement] = field(default_factory=list)
    version: Optional[int] = None
    intu_bid: Optional[str] = None
    encoding: Optional[str] = None
    readable: bool = False
    left_out: List[int] = field(default_factory=list)  # transaction numbers that could not be converted


def _depth(root: ET.Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, d + 1) for child in node)
    return deepest


def _text(node: Optional[ET.Element], tag: str) -> str:
    if node is None:
        return ""
    child = node.find(tag)
    if child is None or child.text is None:
        return ""
    return child.text.strip()[:MAX_VALUE_CHARS]


CHARSET_HELP = (
    "Open it in a text editor (Notepad, TextEdit), check that it starts with OFXHEADER or <?xml and "
    "contains <OFX>, or download the CSV format for the same dates instead."
)


def analyse_ofx(data: bytes, ext: str) -> OfxResult:
    res = OfxResult()
    label = f".{ext.upper()}" if ext else "OFX"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or looks_utf16(data):
        data = data.decode(
            "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else looks_utf16(data), errors="replace"
        ).encode("utf-8")
    try:
        header, root, _ = ofx_reader.read(data)
    except ofx_reader.OfxReadError as exc:
        res.problems.append(Problem(None, ERROR, f"I can't read this {label} file: {exc}. {CHARSET_HELP}", "unreadable"))
        return res
    except Exception as exc:  # anything hostile input provokes
        logger.debug("OFX read failed: %r", exc)
        res.problems.append(
            Problem(None, ERROR, f"I can't read this {label} file: its tags are broken. " + CHARSET_HELP, "unreadable")
        )
        return res
    if _depth(root) > MAX_DEPTH:
        res.problems.append(
            Problem(None, ERROR, f"I can't read this {label} file: its tags are nested far too deep.", "unreadable")
        )
        return res
    if not data.rstrip(b" \t\r\n\x00\x1a")[-6:].upper() == b"</OFX>":
        res.problems.append(
            Problem(
                None,
                ERROR,
                f"This {label} file is cut off (it doesn't end with </OFX>), so some "
                "transactions may be missing. Download it again from your bank.",
                "truncated",
            )
        )
        return res
    res.readable = True
    res.version = header.version
    res.encoding = header.codec
    if "unknown_charset" in header.notes:
        res.problems.append(
            Problem(
                None,
                INFO,
                f"The file says its characters are '{header.declared[:20]}', a name I "
                f"don't know; I read them as {header.codec}. Check accented letters in the "
                "descriptions.",
                "charset",
            )
        )
    if "utf8_not_declared" in header.notes:
        res.problems.append(
            Problem(
                None,
                INFO,
                f"The file says its characters are '{header.declared[:20]}' but they are UTF-8; I read them as UTF-8.",
                "charset",
            )
        )
    bid = root.find(".//INTU.BID")
    res.intu_bid = (bid.text or "").strip()[:40] if bid is not None else None
    if ext == "qbo":
        if not res.intu_bid:
            res.problems.append(
                Problem(
                    None,
                    WARNING,
                    "This .QBO file has no INTU.BID (the bank's Intuit ID). "
                    "QuickBooks may refuse it, saying your bank doesn't support Web Connect. "
                    "Download it again from your bank, or upload the converted CSV instead.",
                    "intu_bid",
                )
            )
        if res.version and res.version >= 200:
            res.problems.append(
                Problem(
                    None,
                    INFO,
                    "This .QBO file is OFX 2 (XML); Web Connect files are usually "
                    "OFX 1.02. If QuickBooks refuses it, upload the converted CSV.",
                    "qbo_version",
                )
            )
    if root.find(".//INVSTMTRS") is not None:
        res.problems.append(
            Problem(
                None,
                ERROR,
                "This is an investment statement; QuickBooks Online's bank upload only takes bank and credit-card transactions.",
                "investment",
            )
        )
    number = 0
    fitids: Dict[Tuple[str, str], int] = {}
    for node in root.iter():
        if node.tag not in ("STMTRS", "CCSTMTRS"):
            continue
        st = Statement(kind="bank" if node.tag == "STMTRS" else "credit card")
        acct = node.find(".//BANKACCTFROM") if node.tag == "STMTRS" else node.find(".//CCACCTFROM")
        st.account_id = clean_text(_text(acct, "ACCTID"))
        st.bank_id = clean_text(_text(acct, "BANKID"))
        st.account_type = clean_text(_text(acct, "ACCTTYPE")) or ("CREDITCARD" if node.tag == "CCSTMTRS" else "")
        st.currency = clean_text(_text(node, "CURDEF"))
        if not st.account_id:
            res.problems.append(
                Problem(
                    None,
                    ERROR,
                    f"The {st.kind} statement in this file doesn't say which account it "
                    "is for (no account number); QuickBooks can't match it to an account.",
                    "account_info",
                )
            )
        elif node.tag == "STMTRS" and not st.bank_id:
            res.problems.append(Problem(None, WARNING, "The bank statement has no bank routing number (BANKID).", "account_info"))
        for trn in node.iter("STMTTRN"):
            number += 1
            tx = _transaction(res, trn, number, st, fitids)
            if tx is None:
                res.left_out.append(number)
            else:
                st.transactions.append(tx)
        res.statements.append(st)
    if not res.statements and not any(p.code == "investment" for p in res.problems):
        res.problems.append(Problem(None, ERROR, "There are no bank or credit-card transactions in this file.", "no_statement"))
    if not any(p.severity == ERROR for p in res.problems):
        _strict_check(res, root)
    return res


def _transaction(res: OfxResult, trn: ET.Element, number: int, st: Statement, fitids) -> Optional[Transaction]:
    from ofxtools import Types

    where = f"Transaction {number}"
    fitid = _text(trn, "FITID")
    posted = _text(trn, "DTPOSTED")
    amount_text = _text(trn, "TRNAMT")
    name = _text(trn, "NAME") or _text(trn.find("PAYEE"), "NAME")
    where_long = f"{where} ({clean_text(name)[:40] or 'no name'}, {posted or 'no date'})"
    ok = True
    if not fitid:
        res.problems.append(
            Problem(None, ERROR, f"{where_long} has no FITID, the ID QuickBooks uses to spot duplicates.", "fitid_missing")
        )
    else:
        key = (st.account_id, fitid)
        if key in fitids:
            res.problems.append(
                Problem(
                    None,
                    WARNING,
                    f"{where_long} has the same FITID ({fitid[:40]}) as transaction "
                    f"{fitids[key]}; QuickBooks treats them as one transaction and imports only "
                    "the first.",
                    "fitid_duplicate",
                )
            )
        else:
            fitids[key] = number
    day = None
    m = _OFX_DATE.match(posted)
    try:
        Types.DateTime().convert(posted)
        day = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except Exception:
        day = None
    if day is None or not 1900 <= day.year <= 2099:
        ok = False
        res.problems.append(
            Problem(None, ERROR, f"{where_long}: the posted date '{posted[:40]}' isn't a valid OFX date.", "bad_date")
        )
    value: Optional[Decimal] = None
    if len(amount_text) <= 40:
        try:
            value = Types.Decimal().convert(amount_text)
        except Exception:
            value = None
    if value is None or not value.is_finite() or abs(value) >= MAX_ABS:
        ok = False
        res.problems.append(Problem(None, ERROR, f"{where_long}: the amount '{amount_text[:40]}' isn't a number.", "bad_amount"))
    elif "," in amount_text:
        res.problems.append(
            Problem(
                None,
                WARNING,
                f"{where_long}: the amount '{amount_text}' uses a decimal comma; QuickBooks may misread it.",
                "decimal_comma",
            )
        )
    if not ok:
        return None
    desc = describe(name, _text(trn, "MEMO"), _text(trn, "CHECKNUM"))
    return Transaction(row=number, date=day, description=desc, amount=value, key=("fitid", st.account_id, fitid))


def describe(name: str, memo: str, check: str) -> str:
    """What QuickBooks shows: the payee, with the memo when it adds something (banks cut NAME at 32 characters
    and repeat it whole in MEMO), and the cheque number when there is one (never "Check 0")."""
    name, memo, check = clean_text(name), clean_text(memo), clean_text(check)
    if memo and name and memo.lower().startswith(name.lower()):
        desc = memo
    elif memo and memo.lower() not in name.lower():
        desc = f"{name} - {memo}" if name else memo
    else:
        desc = name
    if check.isdigit() and int(check) and not re.search(rf"(?<!\d)0*{int(check)}(?!\d)", desc):
        desc = f"{desc} - Check {int(check)}" if desc else f"Check {int(check)}"
    return desc.lstrip("=+-@ ")[:1000]


def _strict_check(res: OfxResult, root: ET.Element) -> None:
    """The library's full validation against the OFX specification; a failure is a warning since
    QuickBooks is more lenient than the specification."""
    from ofxtools.models.base import Aggregate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Aggregate.from_etree(root)
    except Exception as exc:
        detail = clean_text(str(exc))[:160]
        res.problems.append(
            Problem(
                None,
                WARNING,
                "The file doesn't follow the OFX standard strictly "
                f"({detail}); QuickBooks may refuse it. If it does, upload the converted CSV.",
                "ofx_spec",
            )
        )
