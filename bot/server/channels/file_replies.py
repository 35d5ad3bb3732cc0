"""The pieces of the file-share flow (``bot.server.channels.file_share``): fetching a shared file
safely, running the manual upload assistant (:func:`bot.upload.analyse`) and wording the reply.

``download`` is the common shape of a channel's download (through the outbound policy's client,
capped, within ``DOWNLOAD_TIMEOUT``, every failure told to the user as ``UNREACHABLE``); which URLs a
channel fetches, and with which credentials, is the channel's own (``slack.outbound``,
``teams.outbound``). ``check_file`` runs the assistant and words a :class:`FileReply`; each channel
posts it its own way. ``PendingFiles`` keeps a file waiting for the date-order answer.

Nothing here logs a message's text, a file's name or its content: only sizes, hosts and outcomes.
Converted files are not hosted by the bot: the channels send them back in the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import httpx

from bot.outbound import OutboundClient
from bot.upload import ConvertedFile, UploadReport, analyse
from bot.upload.limits import human_size, max_input_bytes

logger = logging.getLogger(__name__)

#: A message with more files than this: the first ones are checked, the rest get a note.
MAX_FILES_PER_MESSAGE = 3
#: Button payload that re-runs the last file's analysis with a date order: ``/upload_date_order DMY``.
DATE_ORDER_PREFIX = "/upload_date_order"
DATE_ORDERS = ("MDY", "DMY", "YMD")
#: How long a file waiting for the date-order answer is kept in memory (per conversation).
PENDING_TTL = 15 * 60
DOWNLOAD_TIMEOUT = 15.0
MAX_REDIRECTS = 3


def max_file_bytes(configured: Any = None) -> int:
    """The channel's cap: ``configured`` when a positive integer, else the assistant's own limit."""
    try:
        value = int(configured) if configured not in (None, "") else 0
    except (TypeError, ValueError):
        value = 0
    return value if value > 0 else max_input_bytes()


# ---------------------------------------------------------------------------------------------------- quiet downloads
_DOWNLOADING: contextvars.ContextVar[bool] = contextvars.ContextVar("bankfeed_file_download", default=False)


class _QuietDownloads(logging.Filter):
    """httpx logs every request's full URL at INFO: file names, and for file links the signed query
    string. Those records are dropped while a shared file is being fetched (in that task only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _DOWNLOADING.get()


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _QuietDownloads) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_QuietDownloads())


@contextlib.contextmanager
def quiet_download():
    """Wrap a shared file's download in this: httpx does not log its URL."""
    token = _DOWNLOADING.set(True)
    try:
        yield
    finally:
        _DOWNLOADING.reset(token)


# ---------------------------------------------------------------------------------------------------- failures
class FileRefused(Exception):
    """The file can't be fetched or checked; ``str(error)`` is what the user is told."""


class FileTooLarge(FileRefused):
    def __init__(self, limit: int, size: Optional[int] = None):
        self.limit, self.size = limit, size
        super().__init__(too_large_text(limit, size))


def too_large_text(limit: int, size: Optional[int] = None) -> str:
    what = f"That file is too large ({human_size(size)})" if size else "That file is too large"
    return (
        f"{what}: I can check files up to {human_size(limit)}, and QuickBooks itself takes at most 350 KB "
        "per upload. Download a shorter date range from your bank and share that instead."
    )


UNREACHABLE = (
    "I couldn't download that file, so I haven't checked it. Please try sharing it again, or use the upload page on our website."
)
NOT_A_FILE = "I can only check files shared here directly (not links to other sites). Please attach the file itself."


# ---------------------------------------------------------------------------------------------------- downloads
async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, refusing more than ``limit`` bytes (declared or actual)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FileTooLarge(limit, int(declared))
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise FileTooLarge(limit)
    return bytes(body)


async def download(fetch: Callable[[], Awaitable[bytes]], what: str) -> bytes:
    """``await fetch()`` with httpx's URL logging off (``quiet_download``); any failure other than a
    :class:`FileRefused` is logged by its type only (``what``: "a shared Slack file") and becomes
    ``FileRefused(UNREACHABLE)``."""
    try:
        with quiet_download():
            return await fetch()
    except FileRefused:
        raise
    except Exception as error:
        logger.warning("Downloading %s failed: %s.", what, type(error).__name__)
        raise FileRefused(UNREACHABLE) from None


async def get_capped(client: OutboundClient, url: str, limit: int, what: str, **stream_options: Any) -> bytes:
    """GET ``url`` through ``client`` (the outbound policy), at most ``limit`` bytes, within
    ``DOWNLOAD_TIMEOUT``. Any status but 200 (a redirect that is not followed included) is logged with
    the host and becomes ``FileRefused(UNREACHABLE)``; too many bytes, :class:`FileTooLarge`."""

    async def get() -> bytes:
        async with client.stream("GET", url, **stream_options) as streamed:
            r = streamed.response
            if r.status_code != 200:
                logger.warning("Downloading %s from %s failed: HTTP %s.", what, urlsplit(streamed.url).hostname, r.status_code)
                raise FileRefused(UNREACHABLE)
            return await read_capped(r, limit)

    return await asyncio.wait_for(get(), timeout=DOWNLOAD_TIMEOUT)


def same_origin(a: str, b: str) -> bool:
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port or _default_port(pa.scheme)) == (
            pb.scheme,
            pb.hostname,
            pb.port or _default_port(pb.scheme),
        ) and pa.hostname is not None
    except ValueError:
        return False


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# ---------------------------------------------------------------------------------------------------- the reply
@dataclass
class FileReply:
    text: str
    converted: List[ConvertedFile] = field(default_factory=list)
    buttons: List[Dict[str, str]] = field(default_factory=list)  # the date-order question, when asked
    report: Optional[UploadReport] = None


def date_order_payload(order: str) -> str:
    return f"{DATE_ORDER_PREFIX} {order}"


def parse_date_order_payload(text: Any) -> Optional[str]:
    """``MDY`` / ``DMY`` / ``YMD`` for one of our date-order buttons, else None."""
    if not isinstance(text, str):
        return None
    parts = text.strip().split()
    if len(parts) == 2 and parts[0] == DATE_ORDER_PREFIX and parts[1].upper() in DATE_ORDERS:
        return parts[1].upper()
    return None


def region_from_locale(locale: Any) -> str:
    """``en-GB`` -> ``UK``, ``fr-CA`` -> ``CA``; ``US`` otherwise."""
    if isinstance(locale, str) and "-" in locale:
        country = locale.rsplit("-", 1)[1].strip().upper()
        if country.isalpha() and 2 <= len(country) <= 3:
            return "UK" if country == "GB" else country
    return "US"


async def check_file(data: bytes, filename: str, *, date_order: Optional[str] = None, region: str = "US") -> FileReply:
    """Runs the assistant (in a worker thread) and words the reply. Never raises."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(None, functools.partial(analyse, data, filename, date_order=date_order, region=region))
    logger.info(
        "Checked a shared file: %d bytes, type %s, %d problem(s), %d converted file(s), %.2fs.",
        len(data),
        report.file_type,
        len(report.problems),
        len(report.converted),
        time.monotonic() - started,
    )
    return reply_for(report)


def reply_for(report: UploadReport) -> FileReply:
    text = report.plain_text().strip() or "I couldn't check that file."
    buttons: List[Dict[str, str]] = []
    question = report.needs_date_order
    if question:
        options = question.get("options") if isinstance(question.get("options"), dict) else {}
        for order in DATE_ORDERS:
            if order in options:
                buttons.append({"title": str(options[order])[:60], "payload": date_order_payload(order)})
        if not buttons:
            buttons = [
                {"title": "Month first", "payload": date_order_payload("MDY")},
                {"title": "Day first", "payload": date_order_payload("DMY")},
            ]
    elif report.converted:
        text += "\nThe converted file is attached below."
    return FileReply(text=text, converted=list(report.converted) if not question else [], buttons=buttons, report=report)


def more_files_text(skipped: int) -> str:
    return (
        f"I checked the first {MAX_FILES_PER_MESSAGE} files; share the other {skipped} in another message "
        "if you want me to check them too."
    )


# ---------------------------------------------------------------------------------------------------- pending files
class PendingFiles:
    """The last file per conversation that is waiting for the date-order answer (memory only,
    ``ttl`` seconds, bounded in count and bytes; the oldest go first)."""

    def __init__(self, ttl: float = PENDING_TTL, max_files: int = 200, max_bytes: int = 64 * 1024 * 1024):
        self.ttl, self.max_files, self.max_bytes = ttl, max_files, max_bytes
        self._items: "OrderedDict[str, Tuple[str, bytes, float, Dict[str, Any]]]" = OrderedDict()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= len(item[1])

    def _purge(self) -> None:
        now = time.monotonic()
        for key in [k for k, item in self._items.items() if item[2] <= now]:
            self._drop(key)

    def put(self, key: str, filename: str, data: bytes, **extra: Any) -> None:
        self._purge()
        self._drop(key)
        while self._items and (len(self._items) >= self.max_files or self._bytes + len(data) > self.max_bytes):
            self._drop(next(iter(self._items)))
        self._items[key] = (filename, data, time.monotonic() + self.ttl, dict(extra))
        self._bytes += len(data)

    def take(self, key: str) -> Optional[Tuple[str, bytes, Dict[str, Any]]]:
        self._purge()
        item = self._items.get(key)
        if item is None:
            return None
        self._drop(key)
        return item[0], item[1], item[3]

    def __len__(self) -> int:
        self._purge()
        return len(self._items)


EXPIRED = "I no longer have that file (I keep it only for a few minutes). Please share it again."


# ---------------------------------------------------------------------------------------------------- hand-off
async def handed_off(router: Any, conversation_id: str) -> bool:
    """True when a specialist holds (or is about to take) the conversation: files then go to them."""
    services = getattr(router, "services", None)
    if services is None:
        return False
    try:
        return await services.run(services.tickets.open_ticket_for, conversation_id) is not None
    except Exception:
        logger.exception("Product database unavailable while checking a shared file for a ticket; the bot checks it.")
        return False


def shared_note(names: List[str]) -> str:
    """What the specialist's transcript shows for a file-only message."""
    shown = ", ".join(n[:80] for n in names[:MAX_FILES_PER_MESSAGE]) or "a file"
    return f"(shared a file: {shown})"
