"""Keeps credentials that arrive in URLs out of the logs.

Clients should send the Rasa API token in the ``Authorization: Bearer`` header, but ``?token=`` still
works and URLs are logged: Sanic's access log (the ``request`` field), Sanic's error log ("Exception
occurred while handling uri: ..."), and whatever else formats a URL. ``install()`` rewrites
``token=<value>`` (also ``access_token``, ``auth_token``) to ``token=[removed]`` in every log record
this process creates (a record factory), and in the access log's extra fields (a filter on
``sanic.access``, whose ``request`` field is attached after the record is made).

``ACCESS_LOG=true`` turns Sanic's access log on (Rasa keeps it at LOG_LEVEL_LIBRARIES, ERROR by default).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any

TOKEN_PARAM = re.compile(r"((?:^|[?&;\s\"'])(?:access_|auth_)?token=)[^&\s\"'#;]*", re.IGNORECASE)
REMOVED = r"\1[removed]"
_MARK = "_bankfeed_token_scrub"


def scrub(text: str) -> str:
    return TOKEN_PARAM.sub(REMOVED, text) if "token=" in text.lower() else text


class ScrubAccessLog(logging.Filter):
    """Scrubs the ``request`` and ``host`` fields Sanic adds to access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field in ("request", "host"):
            value = record.__dict__.get(field)
            if isinstance(value, str):
                record.__dict__[field] = scrub(value)
        return True


def install() -> None:
    """Idempotent; safe to call in every process (the record factory is inherited over fork)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, _MARK, False):

        def scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: leave it to logging to report
                return record
            if "token=" in message.lower():
                record.msg, record.args = scrub(message), None
            return record

        setattr(scrubbing_factory, _MARK, True)
        logging.setLogRecordFactory(scrubbing_factory)
    access = logging.getLogger("sanic.access")
    if not any(isinstance(f, ScrubAccessLog) for f in access.filters):
        access.addFilter(ScrubAccessLog())


def apply_access_log_setting() -> None:
    """``ACCESS_LOG=1|true|yes``: Sanic's access log at INFO."""
    if (os.environ.get("ACCESS_LOG") or "").strip().lower() in ("1", "true", "yes", "on"):
        logging.getLogger("sanic.access").setLevel(logging.INFO)
