"""Splits decoded text into spreadsheet rows: sniffs the delimiter, honours quotes, numbers rows
the way a spreadsheet shows them (row 1 is the first line, blank lines count)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Tuple

from bot.upload.limits import MAX_COLUMNS, MAX_ROWS

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
SAMPLE_CHARS = 200_000


@dataclass(frozen=True)
class Record:
    row: int  # spreadsheet row number, 1-based
    cells: Tuple[str, ...]

    @property
    def blank(self) -> bool:
        return not any(c.strip() for c in self.cells)


@dataclass
class Table:
    records: List[Record]
    delimiter: str
    error: Optional[str] = None  # why reading stopped early (the records so far are kept)
    truncated: bool = False


def _reader(text: str, delimiter: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)


def sniff_delimiter(text: str) -> str:
    """The delimiter giving the most rows with the same number (>= 2) of cells."""
    sample = text[:SAMPLE_CHARS]
    if len(text) > SAMPLE_CHARS:
        sample = sample[: sample.rfind("\n") + 1] or sample
    best, best_score = ",", (-1, 0, 0)
    for rank, delimiter in enumerate(DELIMITERS):
        if delimiter not in sample:
            continue
        counts: Counter = Counter()
        try:
            for i, cells in enumerate(_reader(sample, delimiter)):
                if i >= 2000 or len(cells) > MAX_COLUMNS:
                    break
                if any(c.strip() for c in cells):
                    counts[len(cells)] += 1
        except csv.Error:
            continue
        if not counts:
            continue
        width, rows = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if width < 2:
            continue
        score = (rows, width, -rank)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def read_table(text: str, delimiter: Optional[str] = None) -> Table:
    """Every record of ``text``. A broken quote or a monster field stops reading with ``error``."""
    delimiter = delimiter or sniff_delimiter(text)
    records: List[Record] = []
    error = None
    truncated = False
    reader = _reader(text, delimiter)
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error = f"Row {row + 1}: the file stops making sense here ({exc}); usually a value with an opening quote that is never closed, or a value that is far too long."
            break
        row += 1
        if len(cells) > MAX_COLUMNS:
            error = (
                f"Row {row} has {len(cells)} columns; a bank export has a handful, so this isn't one "
                "(or it is damaged). I stopped reading here."
            )
            break
        if row > MAX_ROWS:
            truncated = True
            break
        records.append(Record(row=row, cells=tuple(cells)))
    return Table(records=records, delimiter=delimiter, error=error, truncated=truncated)
