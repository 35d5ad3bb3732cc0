"""Sizes and caps of the manual upload assistant (one place to change them)."""

from __future__ import annotations

import os

#: QuickBooks Online refuses uploaded bank files larger than 350 KB. We count 350,000 bytes so a
#: file we call fine is fine whichever way "KB" is read.
QBO_MAX_FILE_BYTES = 350_000

#: What the assistant itself accepts (bytes). Override with ``BANKFEED_UPLOAD_MAX_BYTES``.
DEFAULT_MAX_INPUT_BYTES = 5 * 1024 * 1024

#: More rows than any real bank export for a few months; stops pathological files early.
MAX_ROWS = 200_000

#: No bank export has this many columns; wider rows mean the file is something else.
MAX_COLUMNS = 100

#: A date or amount cell longer than this is not a date or an amount (and is never fed to a regex).
MAX_TOKEN_CHARS = 64

#: Descriptions are cut to this many characters in the converted file.
MAX_DESCRIPTION_CHARS = 1_000

#: At most this many problems are listed one by one; the rest are counted in a closing line.
MAX_PROBLEMS = 1_000

#: How many of the first records are searched for the header row.
HEADER_SEARCH_ROWS = 50


def max_input_bytes() -> int:
    """The hard input limit, from ``BANKFEED_UPLOAD_MAX_BYTES`` when set to a positive integer."""
    raw = os.environ.get("BANKFEED_UPLOAD_MAX_BYTES", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_INPUT_BYTES


def human_size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1000:.0f} KB"
    return f"{n / 1_000_000:.1f} MB"
