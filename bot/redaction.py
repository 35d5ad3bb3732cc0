"""Finds and masks secrets users paste into a chat: passwords, card and account numbers, codes, tokens, ids.

The bot never asks for any of these, but customers of a bank-feed bot paste them anyway ("my password is
Summer2024!", the code their bank texted for Error 185, a card number, a routing and account number).
Whatever matches here is masked before anything is stored, streamed, logged or quoted (see
``bot.server.stores.tracker_store``, ``bot.log_masking``, ``bot/handoff/desk.py``), and makes the bot say that it
removed it and why.

The rules cover families, not examples (docs: /work/notes/secrets.md has the list and the deliberate limits):

* passwords, PINs, passphrases, security answers and memorable words after a keyword, in many wordings
  ("password is X", "pw: X", "PIN 1234", "my passphrase is correct horse battery staple");
* sign-in details in a web address (``https://user:pass@bank.com/``);
* tokens and keys: ``Authorization: Bearer ...``, Slack ``xox?-``, Stripe ``sk_live_``, GitHub ``ghp_``,
  AWS ``AKIA...``, Google ``AIza...``, JWTs, private key blocks, "api key: ...";
* one-time codes after code / OTP / verification / 2FA / security code ("the code they texted is 482913");
* card numbers: Luhn-valid 13-19 digits with any separators (spaces, dashes, dots, slashes) and any
  trailing punctuation; any 12-19 digits after a card keyword; CVV/CVC after its keyword;
* government ids: US SSN / ITIN / EIN, Canadian SIN (Luhn), UK National Insurance numbers;
* bank details: IBANs (mod-97), routing / sort / transit codes after their keyword, account numbers after
  an account keyword (even 8 digits that look like a date), and any other run of 8+ digits that is not
  a date, a phone number, an amount or a list of QuickBooks error codes.

QuickBooks error codes (102, 103, 185, 9999, OL-301 ...) and bank names are never masked: "error 102 at
chase" stays as it is.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Sequence, Tuple

PASSWORD = "password"
CARD_NUMBER = "card_number"
CARD_CODE = "card_code"
ACCOUNT_NUMBER = "account_number"
BANK_CODE = "bank_code"
SECRET_TOKEN = "secret_token"
ONE_TIME_CODE = "one_time_code"
GOVERNMENT_ID = "government_id"

MASKS = {
    PASSWORD: "[password removed]",
    CARD_NUMBER: "[card number removed]",
    CARD_CODE: "[card code removed]",
    ACCOUNT_NUMBER: "[account number removed]",
    BANK_CODE: "[bank code removed]",
    SECRET_TOKEN: "[secret removed]",
    ONE_TIME_CODE: "[code removed]",
    GOVERNMENT_ID: "[ID number removed]",
}
# How the bot names what it removed ("I removed what looked like a password and a card number").
DESCRIPTIONS = {
    PASSWORD: "a password",
    CARD_NUMBER: "a card number",
    CARD_CODE: "a card security code",
    ACCOUNT_NUMBER: "an account number",
    BANK_CODE: "a routing number or sort code",
    SECRET_TOKEN: "a security token or key",
    ONE_TIME_CODE: "a one-time security code",
    GOVERNMENT_ID: "an ID number (like a social security or national insurance number)",
}
_MASK = re.compile("|".join(re.escape(m) for m in MASKS.values()))


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------- checksums
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


def _aba_ok(digits: str) -> bool:
    """ABA routing number checksum (9 digits, weights 3 7 1)."""
    if len(digits) != 9:
        return False
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


# IBAN length per country (the SWIFT IBAN registry): a random "xd06tovi6..." in an id is no IBAN.
_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


def _iban_ok(candidate: str) -> bool:
    iban = re.sub(r"[\s-]", "", candidate).upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# ---------------------------------------------------------------------------------------------- shared bits
# QuickBooks Online bank-feed codes are 3 digits (101-199, 3xx) or 999x; never masked on their own.
_ERROR_CODE = re.compile(r"(?:1\d\d|3\d\d|999\d?)")
_CLAUSE_END = re.compile(r"[,;.!?)\]]$")
_TRAILING = ".,;:!?)]}\"'”’"
_QUOTES = "\"'“‘`"

# Words that, right after "password is", say something about the password instead of being it.
_NOT_A_SECRET_WORD = {
    "is",
    "was",
    "and",
    "but",
    "the",
    "for",
    "to",
    "in",
    "on",
    "at",
    "that",
    "this",
    "it",
    "i",
    "my",
    "a",
    "an",
    "not",
    "no",
    "never",
    "has",
    "have",
    "had",
    "changed",
    "reset",
    "expired",
    "wrong",
    "correct",
    "incorrect",
    "again",
    "recently",
    "yesterday",
    "today",
    "manager",
    "protected",
    "field",
    "box",
    "change",
    "works",
    "work",
    "worked",
    "didn't",
    "doesn't",
    "isn't",
    "wasn't",
    "same",
    "with",
    "from",
    "or",
    "right",
    "fine",
    "ok",
    "okay",
    "valid",
    "invalid",
    "good",
    "bad",
    "weak",
    "strong",
    "long",
    "short",
    "too",
    "very",
    "definitely",
    "really",
    "still",
    "also",
    "just",
    "now",
    "locked",
    "blocked",
    "saved",
    "stored",
    "updated",
    "different",
    "new",
    "old",
    "case",
    "being",
    "required",
    "needed",
    "missing",
    "empty",
    "blank",
    "there",
    "here",
    "what",
    "which",
    "one",
    "something",
    "nothing",
    "none",
    "working",
    "broken",
    "rejected",
    "accepted",
    "asked",
    "sent",
    "reset.",
    "probably",
    "always",
    "so",
    "only",
    "exactly",
    "same.",
    "right.",
    "ours",
    "mine",
    "yours",
    "theirs",
    "fixed",
    "off",
    "gone",
    "set",
    "up",
    "down",
    "out",
    "when",
    "if",
    "because",
    "since",
    "then",
    "your",
    "our",
    "their",
    "his",
    "her",
    "any",
    "all",
    "some",
    "every",
    "each",
    "should",
    "would",
    "could",
    "can",
    "will",
    "must",
    "might",
    "may",
    "do",
    "does",
    "did",
    "be",
    "been",
    "are",
    "were",
    "of",
    "by",
    "as",
    "into",
    "about",
    "over",
    "please",
    "thanks",
    "thank",
    "you",
    "we",
    "they",
    "he",
    "she",
    "me",
    "us",
    "them",
    "like",
    "saying",
    "says",
}
# Words that never start a secret after a keyword ("password is not working").
_NEVER_A_SECRET = {
    "is",
    "was",
    "not",
    "no",
    "never",
    "the",
    "a",
    "an",
    "my",
    "being",
    "still",
    "also",
    "too",
    "so",
    "it",
    "that",
    "this",
    "and",
    "but",
    "or",
    "in",
    "on",
    "at",
    "for",
    "to",
    "of",
    "with",
    "has",
    "have",
    "had",
}
# Words that end a multi-word passphrase: the sentence goes on about something else.
_STOP_WORDS = {
    "and",
    "but",
    "so",
    "or",
    "because",
    "then",
    "now",
    "when",
    "while",
    "with",
    "at",
    "on",
    "in",
    "for",
    "from",
    "which",
    "that",
    "since",
    "though",
    "although",
    "however",
    "error",
    "errors",
    "qbo",
    "quickbooks",
    "qb",
    "bank",
    "feed",
    "feeds",
    "it",
    "i",
    "im",
    "i'm",
    "please",
    "thanks",
    "thank",
    "can",
    "could",
    "does",
    "do",
    "did",
    "is",
    "was",
    "still",
    "keeps",
    "my",
    "the",
    "a",
    "an",
    "to",
    "yet",
    "also",
    "if",
    "not",
    "isn't",
    "doesn't",
    "didn't",
    "won't",
    "can't",
    "cant",
    "dont",
    "don't",
    "and/or",
    "btw",
    "pls",
    "plz",
    "but,",
    "username",
    "user",
    "login",
    "id",
    "pin",
    "password",
    "code",
    "account",
    "card",
    "via",
    "by",
    "where",
    "who",
}


def _is_error_code(token: str) -> bool:
    return bool(re.fullmatch(r"\(?#?(?:" + _ERROR_CODE.pattern + r"|OL-?\d{3})\)?", token.strip(_TRAILING), re.I))


def _is_english_word(word: str) -> bool:
    """An all-lowercase word that reads like an ordinary verb/adverb form, not a password."""
    return bool(re.fullmatch(r"[a-z']+", word)) and (word in _NOT_A_SECRET_WORD or bool(re.search(r"(?:ed|ing|ly|n't)$", word)))


def _has_digit_or_symbol(word: str) -> bool:
    core = word.rstrip(_TRAILING)
    return any(c.isdigit() for c in core) or any(not c.isalnum() for c in core)


# ---------------------------------------------------------------------------------------------- tokens and keys
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{10,}"  # Stripe
    r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"  # GitHub, GitLab
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{30,}"  # Google API key
    r"|ya29\.[0-9A-Za-z_-]{20,}"  # Google OAuth access token
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWT
    r")"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
_TOKEN_VALUE = r"[\"']?(?P<secret>[A-Za-z0-9._~+/=:-]{8,})"
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:authori[sz]ation|proxy-authorization)\b\s*[:=]?\s*(?:bearer|basic|token|digest)?\s*" + _TOKEN_VALUE
)
_BEARER = re.compile(r"(?i)\b(?:bearer|basic)\s+" + _TOKEN_VALUE)
_TOKEN_AFTER_KEYWORD = re.compile(
    r"(?i)\b(?:api[ _-]?(?:key|token|secret)|access[ _-]?(?:token|key)|refresh[ _-]?token|auth[ _-]?token|oauth[ _-]?token"
    r"|client[ _-]?secret|secret[ _-]?(?:access[ _-]?)?key|app[ _-]?secret|private[ _-]?key|x-api-key|session[ _-]?token"
    r"|aws_secret_access_key|token|secret|signing[ _-]?secret|webhook[ _-]?secret)\b"
    r"\s*(?:is|was|=|:)?\s*" + _TOKEN_VALUE
)


def _looks_like_token(value: str) -> bool:
    value = value.rstrip(_TRAILING)
    if len(value) < 12 and not any(c.isdigit() for c in value):
        return False
    if re.fullmatch(r"[A-Z]?[a-z]+(?:[-'][a-z]+)*", value):  # an ordinary word ("Basic troubleshooting")
        return False
    classes = sum(
        [
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(c in "+/=_-.~:" for c in value),
        ]
    )
    return classes >= 2 and len(value) >= 8


def _tokens(text: str) -> Iterator[Finding]:
    for m in _PRIVATE_KEY.finditer(text):
        yield Finding(SECRET_TOKEN, m.start(), m.end())
    for m in _TOKEN.finditer(text):
        yield Finding(SECRET_TOKEN, m.start(), m.end())
    for rx in (_AUTH_HEADER, _BEARER, _TOKEN_AFTER_KEYWORD):
        for m in rx.finditer(text):
            value = m.group("secret")
            if _looks_like_token(value) and not _URL_START.match(value):
                yield Finding(SECRET_TOKEN, m.start("secret"), m.start("secret") + len(value.rstrip(_TRAILING)))


# ---------------------------------------------------------------------------------------------- URL sign-in details
_URL_START = re.compile(r"(?i)https?://|www\.")
_URL_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,15}://(?P<info>[^\s/?#@]+:[^\s/?#@]*)@(?=[^\s/?#@]*[a-z0-9])")
_BARE_USERINFO = re.compile(r"(?i)(?<![\w/:@.%+-])(?P<info>[a-z0-9._%+-]+:[^\s/@:]+)@(?=(?:[a-z0-9-]+\.)+[a-z]{2,})")


def _url_sign_ins(text: str) -> Iterator[Finding]:
    for rx in (_URL_USERINFO, _BARE_USERINFO):
        for m in rx.finditer(text):
            yield Finding(PASSWORD, m.start("info"), m.end("info"))


def without_userinfo(url: str) -> str:
    """``url`` without sign-in details: ``https://bob:pw@bank.com/x`` -> ``https://bank.com/x``."""
    return re.sub(r"(?i)^([a-z][a-z0-9+.-]{1,15}://)[^\s/?#@]*@", r"\1", url)


# ---------------------------------------------------------------------------------------------- keyword + value
_PASSWORD_KEYWORD = (
    r"(?:(?:online[ -]banking|bank|banking|login|log-?in|sign[ -]?in|account|card|atm|debit|my|the)\s+)?"
    r"(?P<kw>pass(?:word|wd|code|phrase)s?|pwd|p/w|pw|pass|pin(?:\s*(?:code|number|no\.?|#))?"
    r"|security\s+(?:answer|word|phrase)|secret\s+(?:answer|word|phrase)|memorable\s+(?:word|phrase|info(?:rmation)?|answer)"
    r"|(?:mother'?s\s+)?maiden\s+name|answer\s+to\s+(?:my|the)\s+(?:security|secret)\s+question)"
)
_PHRASE_KEYWORDS = re.compile(r"(?i)passphrase|security|secret|memorable|maiden|answer")
_FILLER = (
    r"(?:\s+(?:i\s+use|i\s+used|i\s+have|i\s+set|i\s+typed|i\s+entered|i\s+gave|we\s+use|they\s+have|you\s+need"
    r"|for\s+(?:the\s+)?[\w&.'-]+(?:\s+(?:online|bank|banking|account|login))?))?"
)
_CONNECTOR = (
    r"(?P<conn>\s*(?:'s|’s|:|=|-+>?|\bis\s*[:=]?|\bwas\s*[:=]?|\bshould\s+be|\bis\s+set\s+to|\bis\s+now|\bis\s+still"
    r"|\bchanged\s+to|\bnow\s+is|\bbecame|\breads|\bof)\s*|\s+)"
)
_PASSWORD_AFTER_KEYWORD = re.compile(r"(?i)\b" + _PASSWORD_KEYWORD + r"\b" + _FILLER + _CONNECTOR + r"(?=\S)")
_WORD_AT = re.compile(r"\S+")


def _phrase_after(text: str, pos: int, max_words: int) -> Tuple[int, int, List[str]]:
    """The words from ``pos`` up to the end of the clause (punctuation, a line break, a stop word)."""
    if pos < len(text) and text[pos] in _QUOTES:
        close = {"“": "”", "‘": "’"}.get(text[pos], text[pos])
        end = text.find(close, pos + 1, pos + 200)
        if end > pos + 1 and "\n" not in text[pos:end]:
            return pos, end + 1, [text[pos + 1 : end]]
    words: List[str] = []
    start = end = pos
    for m in _WORD_AT.finditer(text, pos):
        between = text[end : m.start()]
        if words and ("\n" in between or len(between) > 3):
            break
        word = m.group()
        if words:
            low = word.lower().rstrip(_TRAILING)
            if low in _STOP_WORDS or _MASK.match(text, m.start()) or word.strip(_TRAILING).isdigit() or _is_error_code(word):
                break
        words.append(word)
        end = m.end()
        if len(words) >= max_words or _CLAUSE_END.search(word) or not words[0]:
            break
    return start, end, words


def _passwords_after_keywords(text: str) -> Iterator[Finding]:
    for m in _PASSWORD_AFTER_KEYWORD.finditer(text):
        keyword = m.group("kw").lower()
        explicit = bool(m.group("conn").strip())
        phrase_kw = bool(_PHRASE_KEYWORDS.search(keyword))
        start = m.end()
        if _MASK.match(text, start):
            continue
        first = _WORD_AT.match(text, start)
        if first is None:
            continue
        word = first.group()
        bare = word.strip(_QUOTES).rstrip(_TRAILING).lower()
        if not bare or bare in _NEVER_A_SECRET or (bare in _NOT_A_SECRET_WORD and not (phrase_kw or explicit)):
            continue
        if _is_error_code(word) or _URL_START.match(word):
            continue
        if keyword.startswith("pin") and not explicit and not any(c.isdigit() for c in word):
            continue  # "pin it to the top"
        if not explicit and not phrase_kw:
            # "password hunter2", "PIN 1234": a bare value must look like one (digits or symbols)
            if not _has_digit_or_symbol(word) or keyword == "pass" and word.rstrip(_TRAILING).isdigit() and len(bare) < 4:
                continue
            yield Finding(PASSWORD, start, first.end())
            continue
        if _has_digit_or_symbol(word.strip(_QUOTES)) and word[0] not in _QUOTES:
            yield Finding(PASSWORD, start, first.end())  # a typical single password: "Summer2024!"
            continue
        s, e, words = _phrase_after(text, start, 8)
        if not words:
            continue
        if len(words) == 1 and (_is_english_word(bare) or bare in _NOT_A_SECRET_WORD):
            continue  # "password is wrong", "my password was reset and now 103"
        if len(words) > 1:
            e -= len(words[-1]) - len(words[-1].rstrip(",;.!?"))  # "..., and error 102": keep the comma
        yield Finding(PASSWORD, s, e)


# ---------------------------------------------------------------------------------------------- one-time codes, CVV
_OTP_KEYWORD = (
    r"(?:one[- ]?time\s+(?:pass)?(?:code|password|pin)|otp|2fa(?:\s+code)?|two[- ]?factor(?:\s+(?:auth(?:entication)?\s+)?code)?"
    r"|mfa(?:\s+code)?|verification\s+(?:code|number|pin)|verify\s+code|security\s+(?:code|number)"
    r"|authenti(?:cation|cator)\s+code|auth\s+code|access\s+code|sms\s+code|text(?:ed)?\s+code|confirmation\s+code"
    r"|log-?in\s+code|sign[ -]?in\s+code|passcode|(?<!error\s)code|texted\s+me|sent\s+me|emailed\s+me"
    r"|text\s+message|sms)"
)
_OTP_VALUE = r"(?P<code>(?:[A-Z]-)?(?:\d{3}[ -]\d{3}|\d{4,8}))(?![\d-]|[.,/]\d)"
_OTP_AFTER_KEYWORD = re.compile(
    r"(?i)(?<![\w-])"
    + _OTP_KEYWORD
    + r"\b(?:\s+(?:[a-z']+|\d{3}|\(\d{3}\)|#\d{3})(?![\w-])){0,6}?\s*(?:is|was|=|:|#|-)?\s*[\"']?"
    + r"(?<![\w-])"
    + _OTP_VALUE
)
_OTP_BEFORE_KEYWORD = re.compile(
    r"(?i)(?<![\w-])(?P<code>\d{4,8})\s+(?:is|was)\s+(?:my|the|your|our)?\s*(?:one[- ]?time\s+|verification\s+|security\s+"
    r"|2fa\s+|sms\s+|auth\s+|login\s+|sign[ -]?in\s+)?(?:code|otp|passcode|pin)\b"
)
_CVV = re.compile(
    r"(?i)\b(?:cvv2?|cvc2?|csc|cid|card\s+(?:security|verification)\s+(?:code|number|value)|security\s+code\s+on\s+the\s+back"
    r"|3[- ]digit\s+code)\b\s*(?:is|was|:|=|#)?\s*(?P<code>\d{3,4})(?!\d)"
)


def _codes(text: str) -> Iterator[Finding]:
    for rx in (_OTP_AFTER_KEYWORD, _OTP_BEFORE_KEYWORD):
        for m in rx.finditer(text):
            code = m.group("code")
            halves = re.split(r"[ -]", code)
            if _is_error_code(code) or len(halves) == 2 and all(_is_error_code(h) for h in halves):
                continue  # "code 9999", "code 102 103"
            yield Finding(ONE_TIME_CODE, m.start("code"), m.end("code"))
    for m in _CVV.finditer(text):
        yield Finding(CARD_CODE, m.start("code"), m.end("code"))


# ---------------------------------------------------------------------------------------------- government ids
_SSN = re.compile(r"(?<![\w-])(?!000|666)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_EIN = re.compile(r"(?<![\w-])\d{2}-\d{7}(?![\w-])")
_SIN = re.compile(r"(?<![\w-])[1-79]\d{2}([- ])\d{3}\1\d{3}(?![\w-])")
_NINO = re.compile(
    r"(?i)(?<![a-z0-9])(?!bg|gb|nk|kn|tn|nt|zz)[a-ceghj-pr-tw-z][a-ceghj-npr-tw-z][ -]?\d{2}[ -]?\d{2}[ -]?\d{2}[ -]?[a-d](?![a-z0-9])"
)
_ID_AFTER_KEYWORD = re.compile(
    r"(?i)\b(?:ssn|ss#|social\s+security(?:\s+(?:number|no\.?|#))?|social\s+insurance(?:\s+(?:number|no\.?|#))?|sin(?:\s+(?:number|no\.?|#))?"
    r"|itin|ein|fein|tin|tax\s*(?:payer\s*)?id(?:entification)?(?:\s+(?:number|no\.?|#))?|employer\s+id(?:entification)?(?:\s+(?:number|no\.?))?"
    r"|national\s+insurance(?:\s+(?:number|no\.?))?|ni\s+(?:number|no\.?)|nino|passport(?:\s+(?:number|no\.?|#))?"
    r"|driver'?s?\s+licen[cs]e(?:\s+(?:number|no\.?|#))?)\b\s*(?:is|was|:|=|#|-)?\s*"
    r"(?P<value>\d(?:[ .-]?\d){7,9}(?!\d)|[A-Za-z]{2}[ -]?\d{2}[ -]?\d{2}[ -]?\d{2}[ -]?[A-Da-d](?![\w])"
    r"|[A-Za-z]{1,2}\d{6,9}[A-Za-z]?(?![\w]))"
)


def _government_ids(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        yield Finding(GOVERNMENT_ID, m.start(), m.end())
    for m in _EIN.finditer(text):
        yield Finding(GOVERNMENT_ID, m.start(), m.end())
    for m in _SIN.finditer(text):
        if _luhn_ok(_digits(m.group())) and not (m.group(1) == " " and _is_error_code(m.group()[:3])):
            yield Finding(GOVERNMENT_ID, m.start(), m.end())
    for m in _NINO.finditer(text):
        yield Finding(GOVERNMENT_ID, m.start(), m.end())
    for m in _ID_AFTER_KEYWORD.finditer(text):
        yield Finding(GOVERNMENT_ID, m.start("value"), m.end("value"))


# ---------------------------------------------------------------------------------------------- bank details
_IBAN = re.compile(r"(?i)(?<![a-z0-9])[a-z]{2}\d{2}(?:[ -]?[a-z0-9]{1,4}){3,9}(?![a-z0-9])")
_BANK_CODE_KEYWORD = r"routing|aba|rtn|transit|sort\s*-?code|bsb|swift|bic|institution"
_ACCOUNT_AFTER_KEYWORD = re.compile(
    r"(?i)\b(?P<kw>account|acct|acc|a/c|accnt|acnt|chequing|checking|savings|member|customer|client|"
    + _BANK_CODE_KEYWORD
    + r"|card|cc|credit\s+card|debit\s+card|visa|mastercard|amex|discover)\b"
    r"(?:\s*(?:number|no\.?|num|nbr|nr|#|id))?(?:\s+(?:is|was|ending\s+in|ends\s+in|of))?\s*[:=#-]?\s*"
    r"(?P<value>\d(?:(?:\s?[./-]\s?|\s)?\d){5,33})(?!\d)"
)


def _bank_details(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        candidate = m.group()
        parts = re.split(r"([ -])", candidate)
        while parts:  # the longest prefix that is a valid IBAN ("GB82 WEST 1234 5698 7654 32 thanks")
            if _iban_ok("".join(parts)):
                yield Finding(ACCOUNT_NUMBER, m.start(), m.start() + len("".join(parts)))
                break
            parts = parts[:-2]
    for m in _ACCOUNT_AFTER_KEYWORD.finditer(text):
        keyword, value = m.group("kw").lower(), m.group("value")
        digits = _digits(value)
        if re.fullmatch(_BANK_CODE_KEYWORD, keyword):
            yield Finding(BANK_CODE, m.start("value"), m.end("value"))
        elif keyword in ("card", "cc", "visa", "mastercard", "amex", "discover") or "card" in keyword:
            if 12 <= len(digits) <= 19:
                yield Finding(CARD_NUMBER, m.start("value"), m.end("value"))
        elif 6 <= len(digits) <= 34:
            yield Finding(ACCOUNT_NUMBER, m.start("value"), m.end("value"))
    for m in re.finditer(
        r"(?i)\b(?:routing|aba|sort\s*code|transit)\b[^\d\n]{0,20}?(?P<value>\d{2}[- ]\d{2}[- ]\d{2}|\d{3}-\d{3}|\d{5}-\d{3})(?!\d)",
        text,
    ):
        yield Finding(BANK_CODE, m.start("value"), m.end("value"))


# ---------------------------------------------------------------------------------------------- digit runs
# A run of digits with single separators between them (spaces, dashes, dots, slashes, " - ").
_DIGIT_RUN = re.compile(r"(?<![\w$£€¥.,/+:-])(?:\+)?\d(?:(?:[ \t]?[-./][ \t]?|[ \t])?\d)*(?![\w-]|[.,/]\d)")
_GROUP = re.compile(r"\d+")
_CARD_SHAPES = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2)}


def _is_date(groups: Sequence[str]) -> bool:
    def ymd(y: str, mo: str, d: str) -> bool:
        return 1900 <= int(y) <= 2099 and 1 <= int(mo) <= 12 and 1 <= int(d) <= 31

    if len(groups) == 1 and len(groups[0]) == 8:
        g = groups[0]
        return ymd(g[:4], g[4:6], g[6:]) or ymd(g[4:], g[2:4], g[:2]) or ymd(g[4:], g[:2], g[2:4])
    if len(groups) == 3:
        a, b, c = groups
        if len(a) == 4 and len(b) <= 2 and len(c) <= 2:
            return ymd(a, b, c)
        if len(c) == 4 and len(a) <= 2 and len(b) <= 2:
            return ymd(c, b, a) or ymd(c, a, b)
    return False


def _is_phone(run: str, groups: Sequence[str]) -> bool:
    sizes = tuple(len(g) for g in groups)
    if run.startswith("+"):
        return 8 <= len("".join(groups)) <= 15
    return sizes in {(3, 3, 4), (1, 3, 3, 4)} and len(groups) > 1


def _digit_runs(text: str) -> Iterator[Finding]:
    for m in _DIGIT_RUN.finditer(text):
        run = m.group()
        groups = [(g.start() + m.start(), g.end() + m.start()) for g in _GROUP.finditer(run)]
        values = [text[s:e] for s, e in groups]
        seps = [text[groups[i][1] : groups[i + 1][0]] for i in range(len(groups) - 1)]
        if _is_phone(run, values):
            continue
        taken = [False] * len(groups)
        # cards: the longest window of groups with 13-19 Luhn-valid digits (dots/slashes only in card shapes)
        i = 0
        while i < len(groups):
            best = None
            for j in range(len(groups) - 1, i - 1, -1):
                digits = "".join(values[i : j + 1])
                if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
                    continue
                if j > i and all(_is_error_code(v) for v in values[i : j + 1]):
                    continue  # "error 103 103 168 9999": a list of error codes, Luhn-valid by chance
                inner = seps[i:j]
                if any(s.strip() in (".", "/") for s in inner) and (
                    len({s.strip() for s in inner}) > 1 or tuple(len(v) for v in values[i : j + 1]) not in _CARD_SHAPES
                ):
                    continue
                best = j
                break
            if best is None:
                i += 1
                continue
            yield Finding(CARD_NUMBER, groups[i][0], groups[best][1])
            for k in range(i, best + 1):
                taken[k] = True
            i = best + 1
        # other numbers: segments joined by spaces/dashes only; error codes split segments ("102 103 185")
        segment: List[int] = []

        def flush(segment: List[int] = segment, values=values, groups=groups) -> Iterator[Finding]:  # this run's
            if segment:
                vals = [values[k] for k in segment]
                if len("".join(vals)) >= 8 and not _is_date(vals) and not _is_phone("", vals):
                    yield Finding(ACCOUNT_NUMBER, groups[segment[0]][0], groups[segment[-1]][1])
            segment.clear()

        for k in range(len(groups)):
            joined_by_dot = k > 0 and seps[k - 1].strip() in (".", "/")
            spaced = k > 0 and not seps[k - 1].strip()
            if taken[k] or joined_by_dot:
                yield from flush()
                if joined_by_dot and not taken[k]:
                    segment.clear()
                    continue
                continue
            if _is_error_code(values[k]) and (spaced or (k + 1 < len(groups) and not seps[k].strip())):
                yield from flush()
                continue
            if k > 0 and taken[k - 1]:
                segment.clear()
            if segment and seps[k - 1].strip() in (".", "/"):
                yield from flush()
            segment.append(k)
        yield from flush()


# ---------------------------------------------------------------------------------------------- lone passwords
_WORD = re.compile(r"\S{8,64}")
# Markup and code (HTML tags, attributes, paths) mix character classes too, but aren't passwords.
_MARKUP = re.compile(r"[<>=\"/\\]")
_URLISH = re.compile(r"(?i)^(?:https?://|www\.)|@|\.(?:com|org|net|co|uk|ca|io)\b")


def _looks_like_password(word: str) -> bool:
    word = word.strip(".,;:!?\"'()[]{}")
    if not 8 <= len(word) <= 32 or _URLISH.search(word) or _MARKUP.search(word) or _MASK.search(word):
        return False
    classes = sum(
        [
            any(c.islower() for c in word),
            any(c.isupper() for c in word),
            any(c.isdigit() for c in word),
            any(not c.isalnum() for c in word),
        ]
    )
    # upper and lower case both: ids and slugs ("battery-handoff-b019b9", "29:user-abc123") and ISO times
    # ("2024-05-01T09:00:00+00:00") mix digits and symbols too, but not cases
    return classes >= 3 and any(c.isdigit() for c in word) and any(c.islower() for c in word) and any(c.isupper() for c in word)


def _lone_passwords(text: str) -> Iterator[Finding]:
    for m in _WORD.finditer(text):
        if _looks_like_password(m.group()):
            yield Finding(PASSWORD, m.start(), m.end())


# ---------------------------------------------------------------------------------------------- public API
_FINDERS = (
    _tokens,
    _url_sign_ins,
    _passwords_after_keywords,
    _codes,
    _government_ids,
    _bank_details,
    _digit_runs,
    _lone_passwords,
)
# Cheap test: a message with none of these can't hold anything the finders look for.
_MAYBE = re.compile(r"\d|[A-Za-z0-9]{8}|://|\S{8}|(?i:pass|pin|pw|secret|answer|memorable|maiden|token|bearer|key|word)")


def find_sensitive(text: str) -> List[Finding]:
    """Spans of ``text`` that hold something the user must not share, sorted and without overlaps
    (overlapping findings are merged). Masks already in the text are left alone."""
    if not text or not _MAYBE.search(text):
        return []
    return list(_find_cached(text)) if len(text) <= 4000 else _find(text)


@functools.lru_cache(maxsize=8192)
def _find_cached(text: str) -> Tuple[Finding, ...]:
    return tuple(_find(text))


# A conversation id this server issued (bot.sessions.ISSUED_ID, unanchored): random base64, signed, never
# something a user typed; whatever it happens to look like (1 in ~3,000 looked like an IBAN or a key) it
# stays whole, or the message ids and routing that carry it would break.
_ISSUED_ID = re.compile(r"(?<![A-Za-z0-9_-])(?:rest|web)-[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}(?![A-Za-z0-9_])")


def _find(text: str) -> List[Finding]:
    masked = [(m.start(), m.end()) for m in _MASK.finditer(text)]
    scanned = _ISSUED_ID.sub(lambda m: " " * len(m.group()), text)  # same offsets, nothing to find in an id
    found = []
    for finder in _FINDERS:
        for f in finder(scanned):
            if f.end > f.start and not any(f.start < e and s < f.end for s, e in masked):
                found.append(f)
    return _merged(found)


_PRIORITY = [SECRET_TOKEN, PASSWORD, ONE_TIME_CODE, CARD_NUMBER, CARD_CODE, GOVERNMENT_ID, BANK_CODE, ACCOUNT_NUMBER]


def _merged(findings: List[Finding]) -> List[Finding]:
    kept: List[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if kept and f.start < kept[-1].end:
            last = kept[-1]
            kind = last.kind if (last.end - last.start) >= (f.end - f.start) else f.kind
            kept[-1] = Finding(kind, last.start, max(last.end, f.end))
            continue
        kept.append(f)
    return kept


def redact(text: str) -> str:
    """``text`` with every finding replaced by a mask such as ``[password removed]``."""
    if not isinstance(text, str):
        return text
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


# Words that only say what kind of secret follows ("my card number is ..."), plus the little words
# around them: a message made of these and masks carries nothing but the secret.
_SECRET_LABEL_WORDS = frozenset(
    """
    my our the a an is was are its it's it’s here here's here’s heres this that these those and also plus or
    with for of to in on as at new old current now just please ok okay so
    password passwords passcode passphrase pwd pw pass pin card credit debit number numbers no num acct account
    routing sort code codes cvv cvc csc security secret otp one-time one time verification login log-in sign-in
    user username userid id ssn sin social insurance national tax token key api bank banking online
""".split()
)
_LABEL_WORD = re.compile(r"[\w'’-]+")


def only_secrets(text: str) -> bool:
    """True for a message that holds a secret and nothing else: "my password is hunter2", "card 4111 ...
    and pin 1234". Such a message answers no question, so the dialogue asks its question again."""
    if not isinstance(text, str) or not (_MASK.search(text) or find_sensitive(text)):
        return False  # (the text may come already masked, as the tracker stores it)
    rest = _MASK.sub(" ", redact(text))
    return all(w.lower() in _SECRET_LABEL_WORDS or w.isdigit() for w in _LABEL_WORD.findall(rest))


def describe(kinds: Iterable[str]) -> str:
    """How the bot names what it removed: "a password and a card number"."""
    names = [DESCRIPTIONS.get(k, "something private") for k in dict.fromkeys(kinds)]
    if not names:
        return "something private"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# Metadata keys that hold where a conversation lives (Slack channel/thread ids, Bot Framework references):
# structured ids set by our channels, not anything a user typed; masking them would break replies.
ROUTING_METADATA_KEYS = frozenset(
    {"botframework", "slack", "out_channel", "thread_id", "users", "message_id", "sender_id", "conversation_id", "channel"}
)


def redact_value(value: Any, skip_keys: frozenset = frozenset()) -> Any:
    """A JSON-like value with every string in it masked (dict keys and the values of ``skip_keys`` kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: (v if k in skip_keys else redact_value(v, skip_keys)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, skip_keys) for v in value)
    return value


def contains_secret(value: Any) -> bool:
    return redact_value(value) != value


__all__ = [
    "Finding",
    "MASKS",
    "DESCRIPTIONS",
    "find_sensitive",
    "redact",
    "redact_value",
    "sensitive_kinds",
    "describe",
    "without_userinfo",
    "contains_secret",
    "only_secrets",
    "ROUTING_METADATA_KEYS",
    "PASSWORD",
    "CARD_NUMBER",
    "CARD_CODE",
    "ACCOUNT_NUMBER",
    "BANK_CODE",
    "SECRET_TOKEN",
    "ONE_TIME_CODE",
    "GOVERNMENT_ID",
]
