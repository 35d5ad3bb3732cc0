"""Cross-site request forgery protection of the agent console: a per-session token.

The session cookie rides along with any request the browser makes to the console, including ones a
hostile page triggers. Every state-changing request signed in by cookie must therefore also carry
``X-CSRF-Token``: a value only the console's own page can know. It is derived from the session token
(HMAC-SHA256 keyed with it), so it is bound to that session, changes at every sign-in, needs no
storage, and reveals nothing about the session token itself. The page gets it in the sign-in
answer and from ``GET /agent/api/me`` (same-origin only: no CORS on the console), and the check
compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Optional

HEADER = "x-csrf-token"
_LABEL = b"bankfeed agent console csrf v1"


def token_for(session_token: str) -> str:
    digest = hmac.new(session_token.encode("utf-8"), _LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid(session_token: Optional[str], presented: Optional[str]) -> bool:
    if not session_token or not presented or len(presented) > 256:
        return False
    return hmac.compare_digest(token_for(session_token).encode("ascii"), presented.encode("utf-8", "replace"))
