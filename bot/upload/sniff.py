"""What a file really is, from its content (the name is only a hint), and what its name says."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

#: Binary signatures of files people upload by mistake.
MAGIC = (
    (b"%PDF", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls"),
    (b"\x1f\x8b", "archive"),
    (b"Rar!", "archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
    (b"{\\rtf", "rtf"),
)

OFX_EXTENSIONS = ("qbo", "qfx", "ofx")
SPREADSHEET_EXTENSIONS = ("xlsx", "xlsm", "xls", "ods", "numbers")
ARCHIVE_EXTENSIONS = ("zip", "gz", "tgz", "rar", "7z", "bz2")


@dataclass(frozen=True)
class FileName:
    """A sanitised upload name: ``display`` for messages, ``stem`` for converted files, ``ext``."""

    display: str
    stem: str
    ext: str


def clean_filename(raw: object) -> FileName:
    name = raw if isinstance(raw, str) else ""
    name = re.split(r"[\\/]", name)[-1]  # never a path
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C",)).strip()[:120]
    if not name:
        name = "upload"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    ext = ext.lower() if re.fullmatch(r"[A-Za-z0-9]{1,10}", ext or "") else ""
    safe_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:60] or "bank-transactions"
    return FileName(display=name, stem=safe_stem, ext=ext)


def magic_kind(data: bytes, ext: str) -> str | None:
    """A binary container type from the first bytes, or None for anything that may be text."""
    for signature, kind in MAGIC:
        if data.startswith(signature):
            if kind == "zip":
                if b"xl/" in data[:4000]:
                    return "xlsx"
                if b"opendocument.spreadsheet" in data[:4000] or ext == "ods":
                    return "ods"
                if ext in ("xlsx", "xlsm", "numbers"):
                    return "numbers" if ext == "numbers" else "xlsx"
            return kind
    return None


def text_kind(text: str) -> str:
    """``ofx``, ``qif``, ``html``, ``xml`` (other XML, e.g. an Excel 2003 sheet) or ``text``."""
    head = text.lstrip("\ufeff \t\r\n")[:4000]
    lower = head.lower()
    if lower.startswith("ofxheader") or lower.startswith("<ofx>"):
        return "ofx"
    if lower.startswith("<?xml") and ("<?ofx" in lower or "<ofx>" in lower):
        return "ofx"
    if re.match(r"!(type|account|option|clear)", lower):
        return "qif"
    if lower.startswith(("<!doctype html", "<html")) or "<table" in lower[:1000]:
        return "html"
    if lower.startswith("<?xml") or lower.startswith("<"):
        return "xml"
    return "text"
