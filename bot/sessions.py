"""Server-issued conversation ids for the web channels, and which channel a conversation id belongs to.

A REST client (``POST /webhooks/rest/session``) or a widget (socketio ``session_confirm``) gets an id
``<prefix>-<random>.<tag>``: ``prefix`` is ``rest`` or ``web``, ``random`` 128 random bits (base64url),
``tag`` the first 128 bits of HMAC-SHA256(secret, ``<prefix>-<random>``), base64url. Only the server
can make a valid one, so an id can't be guessed or made up, and one channel's id never passes as
another's. Checking needs no storage: every replica and worker that shares the secret accepts it.

Slack and Teams conversations get ids of their own namespace (``slack-...``, ``teams-...``, built by
those channels from verified requests only), so no web id can ever name one of them;
``channel_of`` reads the channel back from an id's prefix.

The secret: env ``CHAT_SESSION_SECRET`` (at least 32 characters; every replica of a deployment must
have the same one), else one generated once into ``var/chat-session-secret`` (mode 0600). Changing it
invalidates every issued id: clients then start a new conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path
from typing import Mapping, Optional

from bot.paths import var_dir

REST = "rest"
WEB = "web"
ISSUED_PREFIXES = (REST, WEB)
#: Conversation id prefix -> the Rasa input channel that alone may produce such ids.
CHANNEL_OF_PREFIX = {"rest-": "rest", "web-": "socketio", "slack-": "slack", "teams-": "botframework"}
SECRET_ENV = "CHAT_SESSION_SECRET"
SECRET_FILE = "chat-session-secret"
MIN_SECRET_CHARS = 32

_B64 = r"[A-Za-z0-9_-]{22}"  # 16 bytes, base64url without padding
ISSUED_ID = re.compile(rf"^({'|'.join(ISSUED_PREFIXES)})-({_B64})\.({_B64})$")


class SecretError(RuntimeError):
    """The session secret is misconfigured (the message says how to fix it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SessionIds:
    """Issues and checks ids ``<prefix>-<random>.<tag>`` with one server secret."""

    def __init__(self, secret: bytes):
        if len(secret) < MIN_SECRET_CHARS:
            raise SecretError(f"The chat session secret must be at least {MIN_SECRET_CHARS} characters long.")
        self._secret = secret

    def _tag(self, prefix: str, random_part: str) -> str:
        digest = hmac.new(self._secret, f"{prefix}-{random_part}".encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:16])

    def issue(self, prefix: str) -> str:
        """A fresh id of the channel ``prefix`` (``rest`` or ``web``)."""
        if prefix not in ISSUED_PREFIXES:
            raise ValueError(f"Unknown session prefix {prefix!r}.")
        random_part = _b64(secrets.token_bytes(16))
        return f"{prefix}-{random_part}.{self._tag(prefix, random_part)}"

    def verify(self, session_id: object, prefix: str) -> bool:
        """True only for an id this server (or a replica with the same secret) issued for ``prefix``."""
        if not isinstance(session_id, str):
            return False
        match = ISSUED_ID.match(session_id)
        if match is None or match.group(1) != prefix:
            return False
        return hmac.compare_digest(match.group(3), self._tag(prefix, match.group(2)))


def load_secret(env: Optional[Mapping[str, str]] = None, directory: Optional[Path] = None) -> bytes:
    """``CHAT_SESSION_SECRET``, else the secret in ``<var>/chat-session-secret`` (created once, 0600)."""
    env = os.environ if env is None else env
    configured = (env.get(SECRET_ENV) or "").strip()
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise SecretError(
                f"{SECRET_ENV} must be at least {MIN_SECRET_CHARS} characters long "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
            )
        return configured.encode("utf-8")
    path = (directory or var_dir()) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret_file(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return _read_secret_file(path)


def _read_secret_file(path: Path) -> bytes:
    # another process may have just created the file and not written it yet
    deadline = time.monotonic() + 2.0
    while True:
        value = path.read_text().strip()
        if value or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(value) < MIN_SECRET_CHARS:
        raise SecretError(
            f"{path} holds no usable secret (at least {MIN_SECRET_CHARS} characters); "
            f"delete it to have a new one generated, or set {SECRET_ENV}."
        )
    return value.encode("utf-8")


def channel_of(conversation_id: object) -> Optional[str]:
    """The input channel a conversation id belongs to, from its prefix; None for an id of no channel
    (e.g. one made before ids were namespaced)."""
    if not isinstance(conversation_id, str):
        return None
    for prefix, channel in CHANNEL_OF_PREFIX.items():
        if conversation_id.startswith(prefix) and len(conversation_id) > len(prefix):
            return channel
    return None
