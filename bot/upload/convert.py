"""Writes transactions as the clean CSV QuickBooks wants (Date,Description,Amount; one date format;
negatives with a minus; no symbols) and splits it by date range when it would exceed 350 KB."""

from __future__ import annotations

import csv
import io
import re
from itertools import groupby
from typing import List, Sequence

from bot.upload.amounts import format_amount
from bot.upload.dates import format_date
from bot.upload.limits import QBO_MAX_FILE_BYTES
from bot.upload.model import ConvertedFile, Transaction

HEADER = "Date,Description,Amount\r\n"


def _line(t: Transaction, order: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(
        [format_date(t.date, order), t.description, format_amount(t.amount)]
    )
    return buf.getvalue()


_RANGE_SUFFIX = re.compile(r"(?:_new)?_\d{4}-\d{2}-\d{2}_to_\d{4}-\d{2}-\d{2}(?:_part\d+)?$")


def _file(stem: str, kind: str, chunk: Sequence[tuple], used: set) -> ConvertedFile:
    stem = _RANGE_SUFFIX.sub("", stem) or stem  # a converted file uploaded again keeps its name
    txs = [t for t, _ in chunk]
    first, last = min(t.date for t in txs), max(t.date for t in txs)
    base = f"{stem}{'_new' if kind == 'new_only' else ''}_{first.isoformat()}_to_{last.isoformat()}"
    name, n = f"{base}.csv", 2
    while name in used:
        name, n = f"{base}_part{n}.csv", n + 1
    used.add(name)
    content = (HEADER + "".join(line for _, line in chunk)).encode("utf-8")
    return ConvertedFile(filename=name, content=content, rows=len(txs), date_from=first, date_to=last, kind=kind)


def build(
    transactions: Sequence[Transaction], stem: str, order: str = "MDY", kind: str = "all", limit: int = QBO_MAX_FILE_BYTES
) -> List[ConvertedFile]:
    """One file when it fits under ``limit``; otherwise files by date range, no day split across
    files unless a single day alone is over the limit."""
    if not transactions:
        return []
    lines = [(t, _line(t, order)) for t in transactions]
    header_size = len(HEADER.encode("utf-8"))
    total = header_size + sum(len(line.encode("utf-8")) for _, line in lines)
    used: set = set()
    if total <= limit:
        return [_file(stem, kind, lines, used)]
    ordered = sorted(lines, key=lambda tl: tl[0].date)
    chunks: List[List[tuple]] = []
    current: List[tuple] = []
    size = header_size
    for _, day_group in groupby(ordered, key=lambda tl: tl[0].date):
        day = list(day_group)
        day_size = sum(len(line.encode("utf-8")) for _, line in day)
        if current and size + day_size > limit:
            chunks.append(current)
            current, size = [], header_size
        if header_size + day_size > limit:  # one enormous day: split it by rows
            for item in day:
                item_size = len(item[1].encode("utf-8"))
                if current and size + item_size > limit:
                    chunks.append(current)
                    current, size = [], header_size
                current.append(item)
                size += item_size
            continue
        current += day
        size += day_size
    if current:
        chunks.append(current)
    return [_file(stem, kind, chunk, used) for chunk in chunks]
