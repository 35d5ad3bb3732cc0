"""The conversations the load generators play, each turn with what the bot's answer must contain.

A turn is ``(message, expected)``: ``expected`` is a piece of text the bot's replies to that message
must contain (any of them), so a conversation that left the scripted path is seen and counted as an
error (``wrong_path``), not measured as if it were the same work. Two scripts walk the same path of
the product's Error 102 troubleshooting (site check, refresh, the four credential questions, then
sign-in update, cache, private window):

* ``BUTTONS``: what the widget's buttons send (``/deny``, ``/affirm``: no NLU, the payload is the intent);
* ``TYPED``: what a customer types instead: the bank named in words, "no, still failing", a typo or
  two. Each text was checked with ``POST /model/parse`` on the running product (the intent the step
  needs, with the confidences in ``bench/README.md``), and the replies are checked on every run.

``LONG``: a conversation that goes on: the typed script, "that fixed it, thanks", then the same
problem with another bank (a topic switch), and so on: used for the cost per message at 10, 30 and 60
turns.
"""

from __future__ import annotations

import itertools
from typing import List, Optional, Sequence, Tuple

Turn = Tuple[str, Optional[str]]

# what the bot says at each step (the first words of the step's text in domain.yml / the actions)
SITE_CHECK = "Please check the bank's own site"
REFRESH = "Let's refresh the connection"
SIGN_IN = "check your sign-in details"
SAME_USER_ID = "Is the user ID saved in QuickBooks"
PASSWORD_CHANGED = "Have you changed that bank password"
THIRD_PARTY = "third-party access"
NEW_ACCOUNT = "Is this a new account"
EDIT_SIGN_IN = "Edit sign-in info"
BROWSER = "Which browser do you use?"
PRIVATE_WINDOW = "Now try a private window"
FIXED = "glad it's working again"

STEPS = [
    SITE_CHECK,
    REFRESH,
    SIGN_IN,
    SAME_USER_ID,
    PASSWORD_CHANGED,
    THIRD_PARTY,
    NEW_ACCOUNT,
    EDIT_SIGN_IN,
    BROWSER,
    PRIVATE_WINDOW,
]

BUTTON_TEXTS = [
    "getting error 102 on my chase account",
    "/deny",  # the bank's site works -> refresh
    "/deny",  # refresh did not help -> credential check
    "/affirm",  # can sign in on the bank's site
    "/affirm",  # same user ID
    "/affirm",  # password changed recently
    "/affirm",  # third-party access allowed
    "/deny",  # not a new account -> update the sign-in in QuickBooks
    "/deny",  # still failing -> clear the cache (which browser?)
    "/deny",  # -> private window
]
# POST /model/parse on the product (model of 2026-12-02): intent, confidence
TYPED_TEXTS = [
    "it's my chase business checking, error 102",  # report_bank_unavailable 0.98, bank Chase, error_code 102
    "the bank site works fine but quickbooks still fails",  # deny 0.995
    "stil not wokring",  # deny 0.995
    "yes I can log in on the bank site",  # affirm 0.969
    "yeah it's the same user id",  # affirm 0.94
    "yes i changed it",  # affirm 0.982
    "yes, i allowed quickbooks",  # affirm 0.894
    "no its not new",  # deny 0.918
    "no, still failing",  # deny 0.997
    "nope still the same eror",  # deny 0.995
]
BUTTONS: List[Turn] = list(zip(BUTTON_TEXTS, STEPS))
TYPED: List[Turn] = list(zip(TYPED_TEXTS, STEPS))

# the same problem with another bank, typed (each report_bank_unavailable >= 0.89 with the bank found)
NEXT_BANKS = [
    "and now bank of america gives error 102",
    "now citi says error 102 as well",
    "pnc also shows error 102",
    "now td bank gives error 102",
    "and now keybank gives error 102",
    "now fifth third gives error 102",
    "and now truist gives error 102",
]
FIXED_IT = ("that fixed it, thanks", FIXED)  # fixed_it 0.73


def long_conversation(turns: int) -> List[Turn]:
    """``turns`` turns: the typed script, "that fixed it", the next bank's Error 102, and so on."""
    out: List[Turn] = []
    for n in itertools.count():
        first = TYPED[0] if n == 0 else (NEXT_BANKS[(n - 1) % len(NEXT_BANKS)], SITE_CHECK)
        out.extend([first, *TYPED[1:], FIXED_IT])
        if len(out) >= turns:
            return out[:turns]
    raise AssertionError("unreachable")


# The starter (moodbot): its own happy/sad path (its domain.yml's replies), repeated to the same length.
STARTER_TURNS: List[Turn] = [
    ("hi", "Hey! How are you?"),
    ("I'm sad", "Did that help you?"),
    ("yes", "Great, carry on!"),
    ("bye", "Bye"),
]
STARTER: List[Turn] = list(itertools.islice(itertools.cycle(STARTER_TURNS), len(BUTTONS)))


def reply_matches(replies: Sequence[dict], expected: Optional[str]) -> bool:
    """Whether any of the bot's reply messages contains ``expected`` (None: any answer will do)."""
    if expected is None:
        return True
    return any(expected in (r.get("text") or "") for r in replies if isinstance(r, dict))
