"""Finds and masks secrets users paste into a chat: passwords, card and account numbers, tokens.

The bot never asks for a password, but users paste them anyway ("my password is Summer2024!").
Whatever matches here is masked before a message is stored (see ``bot.storage``) and makes the bot
say that such details must not be shared.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

PASSWORD = "password"
CARD_NUMBER = "card_number"
ACCOUNT_NUMBER = "account_number"
SECRET_TOKEN = "secret_token"

MASKS = {
    PASSWORD: "[password removed]",
    CARD_NUMBER: "[card number removed]",
    ACCOUNT_NUMBER: "[account number removed]",
    SECRET_TOKEN: "[secret removed]",
}

# "password is X", "pwd: X", "my passcode = X", "pin 1234", "login is bob / pass hunter2"
_PASSWORD_AFTER_KEYWORD = re.compile(
    r"(?i)\b(?:pass(?:word|wd|code|phrase)?|pwd|pw|pin)\b\s*(?:(?:is|was)\s*[:=]?|[:=])\s*"
    r"(?P<secret>[^\s,;]{3,128})"
)
_NOT_A_SECRET_AFTER_KEYWORD = {
    "is", "was", "and", "but", "the", "for", "to", "in", "on", "at", "that", "this", "it", "i",
    "my", "a", "an", "not", "has", "have", "had", "changed", "reset", "expired", "wrong", "correct",
    "incorrect", "again", "recently", "yesterday", "today", "manager", "protected", "field", "box",
    "change", "works", "work", "worked", "didn't", "doesn't", "same", "with", "from", "or",
}
# 8+ digits, possibly grouped with spaces or dashes: a card (13-19 digits, Luhn) or account number.
_DIGIT_RUN = re.compile(r"(?<![\w.])(?:\d[ -]?){7,22}\d(?![\w.])")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}|(?:19|20)\d{6}")
# Credentials of well-known services, and bearer tokens.
_TOKEN = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# A lone token that mixes character classes like a password does ("Tr0ub4dor&3").
_WORD = re.compile(r"\S{8,64}")
# Markup and code (HTML tags, attributes, paths) mix character classes too, but aren't passwords.
_MARKUP = re.compile(r"[<>=\"/\\]")
_URLISH = re.compile(r"(?i)^(?:https?://|www\.)|@|\.(?:com|org|net|co|uk|ca|io)\b")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _looks_like_password(word: str) -> bool:
    word = word.strip(".,;:!?\"'()[]{}")
    if not 8 <= len(word) <= 32 or _URLISH.search(word) or _MARKUP.search(word):
        return False
    classes = sum(
        [
            any(c.islower() for c in word),
            any(c.isupper() for c in word),
            any(c.isdigit() for c in word),
            any(not c.isalnum() for c in word),
        ]
    )
    return classes >= 3 and any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def find_sensitive(text: str) -> List[Finding]:
    """Spans of ``text`` that hold something the user must not share, without overlaps."""
    if not text:
        return []
    found: List[Finding] = []
    for m in _TOKEN.finditer(text):
        found.append(Finding(SECRET_TOKEN, m.start(), m.end()))
    for m in _DIGIT_RUN.finditer(text):
        if _DATE.fullmatch(m.group()):
            continue
        digits = re.sub(r"\D", "", m.group())
        kind = CARD_NUMBER if 13 <= len(digits) <= 19 and _luhn_ok(digits) else ACCOUNT_NUMBER
        found.append(Finding(kind, m.start(), m.end()))
    for m in _PASSWORD_AFTER_KEYWORD.finditer(text):
        secret = m.group("secret")
        if secret.lower().strip(".,!?") in _NOT_A_SECRET_AFTER_KEYWORD:
            continue
        found.append(Finding(PASSWORD, m.start("secret"), m.end("secret")))
    for m in _WORD.finditer(text):
        if _looks_like_password(m.group()):
            found.append(Finding(PASSWORD, m.start(), m.end()))
    return _without_overlaps(found)


def _without_overlaps(findings: List[Finding]) -> List[Finding]:
    kept: List[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if kept and f.start < kept[-1].end:
            continue
        kept.append(f)
    return kept


def redact(text: str) -> str:
    """``text`` with every finding replaced by a mask such as ``[password removed]``."""
    findings = find_sensitive(text)
    if not findings:
        return text
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(MASKS[f.kind])
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def sensitive_kinds(text: str) -> List[str]:
    return sorted({f.kind for f in find_sensitive(text)})
