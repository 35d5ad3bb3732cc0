"""Turns hostile bytes into text: UTF-8 (with or without BOM), UTF-16, Windows-1252, Latin-1."""

from __future__ import annotations

import codecs
import unicodedata
from typing import Tuple

#: Names reported to the user.
LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with byte-order mark)",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1 (ISO-8859-1)",
}


def looks_utf16(data: bytes) -> str | None:
    head = data[:2000]
    if len(head) < 8:
        return None
    even = head[0::2].count(0)
    odd = head[1::2].count(0)
    half = len(head) // 2
    if odd > 0.4 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.4 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def decode(data: bytes) -> Tuple[str, str]:
    """``(text, encoding)``; never raises (Latin-1 decodes anything)."""
    attempts = []
    if data.startswith(codecs.BOM_UTF8):
        attempts.append("utf-8-sig")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        attempts.append("utf-16")
    else:
        guess = looks_utf16(data)
        if guess:
            attempts.append(guess)
        attempts.append("utf-8")
    attempts += ["cp1252", "latin-1"]
    for name in attempts:
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, UnicodeError):
            continue
    return data.decode("latin-1", errors="replace"), "latin-1"  # pragma: no cover (latin-1 never fails)


def is_binary(text: str) -> bool:
    """True when decoded text is mostly not text: NUL bytes or many control characters."""
    sample = text[:20_000]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    controls = sum(1 for ch in sample if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Cs", "Co"))
    return controls > max(2, len(sample) // 200)


def label(encoding: str) -> str:
    return LABELS.get(encoding, encoding)
