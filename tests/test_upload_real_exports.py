"""The upload assistant on real bank exports from other projects' public test fixtures (``../shared/bank-exports/``
beside the repository; CI has it there). ``expected.json`` says what a correct assistant answers for each file and
how to read the source itself; this test reads every source independently (its own CSV reading from the column
names in ``expected.json``, a regex over the OFX) and checks the assistant's verdict, row count, money in/out,
every (date, amount) pair of the converted copy, the totals the report states, and the descriptions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import List, Tuple

import pytest

from bot.upload import analyse
from bot.upload.report import UploadReport

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "bank-exports"
EXPECTED = SHARED / "expected.json"
FILES = sorted(json.loads(EXPECTED.read_text())["files"].items()) if EXPECTED.exists() else [("<missing>", None)]


def verdict(report: UploadReport) -> str:
    if report.needs_date_order:
        return "ask_date_order"
    if report.ok:
        return "accept"
    if report.converted:
        return "fix+convert"
    return "reject"


def copy_pairs(report: UploadReport) -> List[Tuple[dt.date, Decimal, str]]:
    out = []
    for f in report.converted:
        if f.kind != "all":
            continue
        rows = list(csv.reader(io.StringIO(f.content.decode("utf-8"))))
        assert rows[0] == ["Date", "Description", "Amount"]
        out += [(dt.datetime.strptime(d, "%m/%d/%Y").date(), Decimal(a), desc) for d, desc, a in rows[1:]]
    return out


def number(text: str, decimal: str = ".") -> Decimal:
    s = re.sub(r"[^\d.,\-]", "", text)
    if decimal == ",":
        s = s.replace(".", "").replace(",", ".")
    else:
        s = s.replace(",", "")
    return Decimal(s)


def source_pairs(path: Path, src: dict) -> List[Tuple[dt.date, Decimal]]:
    """The source's transactions, read the way expected.json describes (not by the product)."""
    raw = path.read_bytes()
    if src["kind"] == "ofx":
        out = []
        for block in re.split(rb"<STMTTRN>", raw)[1:]:
            amount = re.search(rb"<TRNAMT>\s*([^<\s]+)", block).group(1).decode()
            day = re.search(rb"<DTPOSTED>\s*(\d{8})", block).group(1).decode()
            out.append((dt.datetime.strptime(day, "%Y%m%d").date(), Decimal(amount)))
        return out
    text = raw.decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=src.get("delimiter", ",")))
    out = []
    for row in rows:
        if not (row.get(src["date"]) or "").strip():
            continue
        day = dt.datetime.strptime(row[src["date"]].strip(), src["date_fmt"]).date()
        dec = src.get("decimal", ".")
        if "amount" in src:
            value = number(row[src["amount"]], dec)
            if "sign_col" in src:
                word = row[src["sign_col"]].strip().lower()
                value = -abs(value) if word in src["out_words"] else abs(value)
        else:
            debit, credit = (row.get(src["debit"]) or "").strip(), (row.get(src["credit"]) or "").strip()
            value = number(credit, dec) if credit and number(credit, dec) else -abs(number(debit, dec))
        out.append((day, value))
    return out


def totals(pairs) -> Tuple[int, str, str]:
    amounts = [p[1] for p in pairs]
    return (
        len(amounts),
        f"{sum((a for a in amounts if a > 0), Decimal(0)):.2f}",
        f"{-sum((a for a in amounts if a < 0), Decimal(0)):.2f}",
    )


@pytest.mark.parametrize("name,spec", FILES, ids=[f[0] for f in FILES])
def test_real_export(name, spec):
    if spec is None:
        pytest.fail(
            f"The shared bank exports are missing: expected {EXPECTED}. They live beside the clone as "
            "../shared/bank-exports/ (README.md, expected.json and 15 files); CI has them. They are not "
            "copied into this repository on purpose (other projects' files, under their licences)."
        )
    path = SHARED / name
    report = analyse(path.read_bytes(), name)
    got = verdict(report)
    assert got in spec["verdicts"], (got, [p.message for p in report.errors])
    if got == "reject":
        assert set(spec.get("reject_codes", [])) <= {p.code for p in report.errors}, [p.code for p in report.errors]
        assert report.plain_text()
        return
    if got == "ask_date_order":
        assert report.converted == []
        assert report.needs_date_order["question"]
        # the report still says what it read: how many transactions and what totals
        assert report.summary["source"]["rows"] == spec["expect_rows"]
        assert (report.summary["source"]["money_in"], report.summary["source"]["money_out"]) == (
            spec["expect_in"],
            spec["expect_out"],
        )
        report = analyse(path.read_bytes(), name, date_order=spec["retry_date_order"])
        assert verdict(report) in ("accept", "fix+convert")
    source = source_pairs(path, spec["source"])
    assert totals(source) == (spec["expect_rows"], spec["expect_in"], spec["expect_out"]), "the source read itself"
    pairs = copy_pairs(report)
    assert totals(pairs) == totals(source)
    assert Counter((d, a) for d, a, _ in pairs) == Counter(source)  # same dates, same amounts, none lost
    s = report.summary
    assert (s["rows"], s["money_in"], s["money_out"]) == totals(source)
    assert (s["source"]["rows"], s["source"]["money_in"], s["source"]["money_out"]) == totals(source)
    assert s["check"]["passed"] is True and s["check"]["differences"] == []
    assert s["sign_convention"]["description"] and s["date_order_reason"] and s["description_column"]
    text = report.plain_text()
    assert f"{spec['expect_rows']} transaction" in text
    descriptions = " | ".join(desc for _, _, desc in pairs)
    for want in spec.get("desc_expect", []):
        assert want in descriptions, descriptions
    for junk in spec.get("desc_forbid", []):
        assert junk not in descriptions, descriptions
    assert "Â" not in descriptions  # no UTF-8 read as Windows-1252


def test_every_shared_file_is_covered():
    assert EXPECTED.exists(), f"missing {EXPECTED}"
    listed = set(json.loads(EXPECTED.read_text())["files"])
    present = {p.name for p in SHARED.iterdir()} - {"README.md", "expected.json"}
    assert listed == present
