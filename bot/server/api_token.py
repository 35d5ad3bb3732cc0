"""The Rasa HTTP API token: where it comes from, and the ``Authorization: Bearer`` header.

The token never travels on a command line (``/proc/<pid>/cmdline`` is readable by every local user
and ends up in process listings and crash reports): ``bot.server.serve`` reads it from ``RASA_API_TOKEN``,
or from the file named by ``RASA_API_TOKEN_FILE``, and hands it to Rasa in-process.

Rasa 3.6 checks the token only in the query string (``requires_auth`` in rasa/server.py reads
``request.args["token"]``; ``Authorization: Bearer`` is reserved for JWTs there), and URLs end up in
access logs. ``install_bearer_header`` lets clients send ``Authorization: Bearer <token>`` instead:
a request carrying exactly the API token (compared in constant time) is treated as if it had
``?token=``; any other bearer value (a JWT, an agent-console session) is left alone.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any, Mapping, Optional

MIN_LENGTH = 16

# Set by bot.server.serve when it starts Rasa; the Sanic worker processes are forked from it.
_token: Optional[str] = None


class TokenError(ValueError):
    pass


def validate(token: str, source: str) -> str:
    token = token.strip()
    if not token:
        raise TokenError(f"{source} is empty.")
    if len(token) < MIN_LENGTH:
        raise TokenError(f"{source} is too short: use at least {MIN_LENGTH} characters (e.g. secrets.token_urlsafe(32)).")
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in token) or not token.isascii():
        raise TokenError(f"{source} must be printable ASCII without spaces.")
    return token


def read_token(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The token from ``RASA_API_TOKEN``, else the file ``RASA_API_TOKEN_FILE``; None if neither is set.
    TokenError for an empty, short or unreadable one."""
    env = os.environ if env is None else env
    if env.get("RASA_API_TOKEN"):
        return validate(env["RASA_API_TOKEN"], "RASA_API_TOKEN")
    path = env.get("RASA_API_TOKEN_FILE")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenError(f"RASA_API_TOKEN_FILE: cannot read {path}: {exc.strerror or exc}") from None
        return validate(text, f"RASA_API_TOKEN_FILE ({path})")
    return None


def set_current(token: Optional[str]) -> None:
    global _token
    _token = token


def current() -> Optional[str]:
    """The token this server was started with (by bot.server.serve), else what the environment says."""
    if _token is not None:
        return _token
    try:
        return read_token()
    except TokenError:
        return None


def bearer(headers: Any) -> Optional[str]:
    value = headers.get("authorization", "") or ""
    return value[7:].strip() if value[:7].lower() == "bearer " else None


def install_bearer_header(app: Any) -> None:
    """Accept ``Authorization: Bearer <API token>`` on Rasa's HTTP API (see the module docstring)."""
    token = current()
    if not token:
        return
    expected = token.encode("utf-8")

    async def bearer_to_query(request: Any) -> None:
        given = bearer(request.headers)
        if given and hmac.compare_digest(given.encode("utf-8", "replace"), expected):
            args = request.args  # Sanic caches the parsed query: this is the object Rasa reads
            if "token" not in args:
                args["token"] = [token]
        return None

    app.register_middleware(bearer_to_query, "request")
