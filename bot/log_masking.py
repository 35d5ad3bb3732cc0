"""Masks secrets in log records, so a password or card number a user pasted, or an API token that
arrived in a URL, never reaches a log file.

``install()`` is called by both servers' launchers before the server starts (``bot.server.serve``,
``bot.server.action_server``), and again, in case a server was started some other way, when the Rasa
server creates its tracker store (``bot.server.stores.tracker_store``) and sets up its HTTP rules
(``bot.server.channels.policy``). Importing a module never installs it. It is idempotent.

It works at the source: the log-record factory is wrapped, so every record any logger creates (Rasa's,
structlog's JSON lines, Sanic's, ours, handlers added after start-up) is masked before any handler sees it:
the formatted message (``msg % args``), the exception text and the stack text. ``SecretMaskingFilter``
does the same as a ``logging.Filter``; ``install()`` also puts it on the handlers that exist, and a
logging config file can name it (``()``: bot.log_masking.SecretMaskingFilter).

URLs: clients should send the Rasa API token in the ``Authorization: Bearer`` header, but ``?token=``
still works and URLs are logged (Sanic's access and error logs). ``token=<value>`` (also
``access_token``, ``auth_token``) becomes ``token=[removed]`` first, then the rest is masked as any
text; Sanic attaches the access log's ``request`` and ``host`` fields after the record is made, so a
filter on ``sanic.access`` masks those too. ``ACCESS_LOG=true`` turns Sanic's access log on
(``apply_access_log_setting``; Rasa keeps it at ERROR otherwise).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
import warnings
from typing import Any, Callable, Optional

from bot.redaction import redact

_MASKED = "_bankfeed_secrets_masked"
TOKEN_PARAM = re.compile(r"((?:^|[?&;\s\"'])(?:access_|auth_)?token=)[^&\s\"'#;]*", re.IGNORECASE)
_lock = threading.Lock()
_installed = False
_formatter = logging.Formatter()


def scrub_url_tokens(text: str) -> str:
    """``...?token=abc&x=1`` -> ``...?token=[removed]&x=1``."""
    return TOKEN_PARAM.sub(r"\1[removed]", text) if "token=" in text.lower() else text


def mask_text(text: str) -> str:
    """What a log line may say of ``text``: URL tokens removed, secrets masked."""
    return redact(scrub_url_tokens(text))


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Masks ``record`` in place (once): message and arguments, exception and stack text."""
    if getattr(record, _MASKED, False):
        return record
    setattr(record, _MASKED, True)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what can be shown, masked
        message = f"{record.msg} {record.args!r}" if record.args else str(record.msg)
    masked = mask_text(message)
    if masked != message or not isinstance(record.msg, str):
        record.msg, record.args = masked, ()
    if record.exc_info and not record.exc_text:
        try:
            record.exc_text = _formatter.formatException(record.exc_info)
        except Exception:
            record.exc_text = "".join(traceback.format_exception_only(*record.exc_info[:2]))
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class SecretMaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees, and never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


class MaskAccessLog(logging.Filter):
    """Masks the ``request`` and ``host`` fields Sanic adds to access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field in ("request", "host"):
            value = record.__dict__.get(field)
            if isinstance(value, str):
                record.__dict__[field] = mask_text(value)
        return True


def _masking_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(previous(*args, **kwargs))

    factory._bankfeed_masking = True  # type: ignore[attr-defined]
    return factory


def _masking_showwarning(previous: Callable[..., None]) -> Callable[..., None]:
    def showwarning(
        message: Any, category: Any, filename: str, lineno: int, file: Optional[Any] = None, line: Optional[str] = None
    ) -> None:
        previous(redact(str(message)), category, filename, lineno, file, line)

    showwarning._bankfeed_masking = True  # type: ignore[attr-defined]
    return showwarning


def install() -> None:
    """Masks secrets in every log record of this process from now on (and in warnings it prints)."""
    global _installed
    with _lock:
        if not getattr(logging.getLogRecordFactory(), "_bankfeed_masking", False):
            logging.setLogRecordFactory(_masking_factory(logging.getLogRecordFactory()))
        if not getattr(warnings.showwarning, "_bankfeed_masking", False):
            warnings.showwarning = _masking_showwarning(warnings.showwarning)
        access = logging.getLogger("sanic.access")
        if not any(isinstance(f, MaskAccessLog) for f in access.filters):
            access.addFilter(MaskAccessLog())
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, SecretMaskingFilter) for f in handler.filters):
                handler.addFilter(SecretMaskingFilter())
        _installed = True


def installed() -> bool:
    return _installed and bool(getattr(logging.getLogRecordFactory(), "_bankfeed_masking", False))


def apply_access_log_setting() -> None:
    """``ACCESS_LOG=1|true|yes``: Sanic's access log at INFO (masked like every record)."""
    if (os.environ.get("ACCESS_LOG") or "").strip().lower() in ("1", "true", "yes", "on"):
        logging.getLogger("sanic.access").setLevel(logging.INFO)
