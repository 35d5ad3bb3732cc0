"""Bank names the bank directory does not know, counted so the team can add the common ones to
``data/banks.yml`` (table ``unknown_banks``, migration 0007).

When a customer names a bank the directory lacks (Comerica, a local credit union), the conversation
goes on and the name is recorded here. Only the name is stored, with how many times it was given and
the first and last UTC **day** it was seen: no conversation id, no channel, no time of day, nothing
else the customer wrote. So that nothing a customer must not share ends up here, a name is refused
(not stored, not logged) unless it is plausibly a bank's name:

* after trimming, Unicode NFKC and collapsing spaces it has 2 to 80 characters, at most 10 words and
  at least two letters;
* it does not start with ``/`` (a button payload or an intent, not a name);
* it has only letters, digits, spaces and ``& ' . , - ( ) /`` (no ``@``, ``:``, ``#``, ``=``, ...);
* no run of 4 or more digits and no more than 4 digits in all (account and phone numbers; "1st
  Source", "5Star Bank" and "121 Financial" pass);
* no web address: a URL or a bare host name (``comerica.com``) is refused, not reduced to its host.
  A host is not the name the team needs for the directory, could be anyone's site (a phishing page
  the customer was sent to), and a URL can carry tokens;
* ``bot.redaction.find_sensitive`` finds nothing in it.

Names are counted by a key: the cleaned name casefolded, without trailing punctuation ("Comerica",
"comerica." and " COMERICA " are one name); the display form is the first one seen, or the first
mixed-case one after an all-lower or all-upper one. At most
``MAX_NAMES`` names are kept: when full, names given once and not seen for ``STALE_DAYS`` make room,
otherwise a new name is dropped (known names still count). ``record`` never raises: storage trouble
is logged and the conversation goes on. Blocking calls: run them in a thread from async code.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import date, timedelta
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from sqlalchemy import case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.db.engine import Database
from bot.db.models import UnknownBankName
from bot.redaction import find_sensitive

logger = logging.getLogger(__name__)

MAX_LENGTH = 80
MAX_WORDS = 10
MAX_NAMES = 5000
STALE_DAYS = 30

_PUNCTUATION = "&'.,-()/ "
_DIGIT_RUN = re.compile(r"\d{4,}")
_URL = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|bank|edu|gov|"
    r"io|co|us|uk|ca|au|biz|info|fcu|credit|financial)\b"
)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-"})


class UnknownBank(NamedTuple):
    name: str
    count: int
    first_seen: date
    last_seen: date

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }


def normalise(name: Any) -> Optional[Tuple[str, str]]:
    """``(key, display)`` of a plausible bank name, or None for anything else (see the module docstring)."""
    if not isinstance(name, str) or len(name) > 4 * MAX_LENGTH:
        return None
    text = unicodedata.normalize("NFKC", name).translate(_QUOTES)
    text = " ".join(text.split())
    text = text.rstrip(".,;:!?").strip()
    if not 2 <= len(text) <= MAX_LENGTH or text.startswith("/") or len(text.split(" ")) > MAX_WORDS:
        return None
    for ch in text:
        if not (ch.isalnum() or ch in _PUNCTUATION):
            return None
    if sum(ch.isalpha() for ch in text) < 2:
        return None
    if _DIGIT_RUN.search(text) or sum(ch.isdigit() for ch in text) > 4 or _URL.search(text):
        return None
    if find_sensitive(text):
        return None
    return text.casefold(), text


class UnknownBanks:
    def __init__(self, db: Database):
        self.db = db

    def record(self, name: str) -> None:
        """Counts one more customer giving ``name`` (refused silently unless it is a plausible bank
        name; storage errors are logged, never raised)."""
        cleaned = normalise(name)
        if cleaned is None:
            logger.debug("An unknown bank name was not recorded: it does not look like a bank's name.")
            return
        key, display = cleaned
        try:
            self._count(key, display)
        except Exception:
            logger.warning("Could not record an unknown bank name.", exc_info=True)

    def _count(self, key: str, display: str) -> None:
        today = self.db.now().date()
        values: Dict[str, Any] = {"count": UnknownBankName.count + 1, "last_seen": today}
        if display not in (display.lower(), display.upper()):  # "Comerica" is a better display than "comerica"
            stored = UnknownBankName.name
            values["name"] = case((or_(stored == func.lower(stored), stored == func.upper(stored)), display), else_=stored)
        for _ in range(3):  # a concurrent first insert of the same name: count on the winner's row
            try:
                with self.db.writing() as s:
                    bumped = s.execute(update(UnknownBankName).where(UnknownBankName.key == key).values(**values)).rowcount
                    if bumped:
                        return
                    if not self._room(s, today):
                        logger.info("Unknown bank name dropped: %s names are kept already.", MAX_NAMES)
                        return
                    s.execute(insert(UnknownBankName).values(key=key, name=display, count=1, first_seen=today, last_seen=today))
                    return
            except IntegrityError:
                continue

    @staticmethod
    def _room(s: Any, today: date) -> bool:
        if s.execute(select(func.count()).select_from(UnknownBankName)).scalar_one() < MAX_NAMES:
            return True
        s.execute(
            delete(UnknownBankName).where(
                UnknownBankName.count == 1, UnknownBankName.last_seen < today - timedelta(days=STALE_DAYS)
            )
        )
        return s.execute(select(func.count()).select_from(UnknownBankName)).scalar_one() < MAX_NAMES

    def counts(self, limit: int = 100) -> List[UnknownBank]:
        """The names, most often given first (then the most recently seen)."""
        limit = max(1, min(int(limit), 1000))
        with self.db.reading() as s:
            rows = s.execute(
                select(UnknownBankName.name, UnknownBankName.count, UnknownBankName.first_seen, UnknownBankName.last_seen)
                .order_by(UnknownBankName.count.desc(), UnknownBankName.last_seen.desc(), UnknownBankName.key)
                .limit(limit)
            ).all()
        return [UnknownBank(*row) for row in rows]

    def dismiss(self, name: str) -> bool:
        """Forgets a name (the team added it to data/banks.yml, or it is noise); True if it was there."""
        cleaned = normalise(name)
        if cleaned is None:
            return False
        with self.db.writing() as s:
            return s.execute(delete(UnknownBankName).where(UnknownBankName.key == cleaned[0])).rowcount > 0
