"""Manual upload assistant over HTTP: ``POST /upload/analyse`` checks a bank export against
QuickBooks Online's upload rules and returns the report with download links for the converted
files (``GET /upload/files/<token>``).

``POST /upload/analyse`` takes ``multipart/form-data`` (``file``; optional ``date_order`` MDY/DMY/YMD,
``last_booked`` YYYY-MM-DD, ``region`` e.g. US/UK/CA, ``sender``) or JSON
``{"filename", "content_base64", "date_order", "last_booked", "region", "sender"}``.
Answers: 200 with the report, 400 malformed request, 413 too large, 415 other content types.
Never 5xx. Converted files are kept in memory only, behind a random token, for one download and
at most an hour; the uploaded file itself is never stored.

Enable it in ``credentials.yml``::

    bot.channels.upload.UploadInput:
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.headers import parse_content_header
from sanic.request import Request, parse_multipart_form

from actions.upload import analyse
from actions.upload.limits import human_size, max_input_bytes
from bot.channels.routes import RoutesChannel

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,100}$")
SENDER = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
REGION = re.compile(r"^[A-Za-z]{2,3}$")
ORDERS = ("MDY", "DMY", "YMD")
DEFAULT_TTL = 3600
GONE = "This download link has expired or was already used. Upload the file again to get a new one."


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class _Stored:
    filename: str
    content: bytes
    expires: float


class FileStore:
    """Converted files in memory: a random token each, one download, gone after ``ttl`` seconds.
    Bounded in count and bytes (the oldest go first)."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic,
                 max_files: int = 500, max_bytes: int = 64 * 1024 * 1024):
        self.ttl, self.clock = ttl, clock
        self.max_files, self.max_bytes = max_files, max_bytes
        self._files: "OrderedDict[str, _Stored]" = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        self.purge()
        return len(self._files)

    def _drop(self, token: str) -> Optional[_Stored]:
        item = self._files.pop(token, None)
        if item is not None:
            self._bytes -= len(item.content)
        return item

    def purge(self) -> None:
        now = self.clock()
        for token in [t for t, item in self._files.items() if item.expires <= now]:
            self._drop(token)

    def put(self, filename: str, content: bytes) -> str:
        self.purge()
        while self._files and (len(self._files) >= self.max_files or self._bytes + len(content) > self.max_bytes):
            self._drop(next(iter(self._files)))
        token = secrets.token_urlsafe(32)
        self._files[token] = _Stored(filename, content, self.clock() + self.ttl)
        self._bytes += len(content)
        return token

    def take(self, token: str) -> Optional[Tuple[str, bytes]]:
        """The file behind ``token`` (then forgotten), or None when unknown or expired."""
        self.purge()
        item = self._drop(token)
        return (item.filename, item.content) if item else None


def _ascii_filename(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "transactions.csv"
    return safe[:120]


def _field(value: Any, name: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string")
    value = value.strip()
    if len(value) > 200:
        raise BadRequest(f"'{name}' is too long")
    return value or None


def parse_options(get: Callable[[str], Any]) -> Dict[str, Any]:
    """The optional fields, validated: ``date_order``, ``last_booked``, ``region``, ``sender``."""
    out: Dict[str, Any] = {}
    order = _field(get("date_order"), "date_order")
    if order is not None:
        if order.upper() not in ORDERS:
            raise BadRequest("date_order must be MDY, DMY or YMD")
        out["date_order"] = order.upper()
    booked = _field(get("last_booked"), "last_booked")
    if booked is not None:
        try:
            out["last_booked"] = dt.date.fromisoformat(booked)
        except ValueError:
            raise BadRequest("last_booked must be a date like 2024-03-01")
    region = _field(get("region"), "region")
    if region is not None:
        if not REGION.match(region):
            raise BadRequest("region must be a country code like US, UK or CA")
        out["region"] = region.upper()
    sender = _field(get("sender"), "sender")
    if sender is not None:
        if not SENDER.match(sender):
            raise BadRequest("sender may only use letters, digits and _ . : @ + -")
        out["sender"] = sender
    return out


def parse_body(body: bytes, content_type: str, max_file: int) -> Tuple[bytes, str, Dict[str, Any]]:
    """``(file bytes, filename, options)`` from a multipart or JSON body; BadRequest otherwise."""
    kind, params = parse_content_header(content_type or "")
    kind = kind.lower()
    if kind == "multipart/form-data":
        boundary = params.get("boundary")
        if not boundary or len(boundary) > 200:
            raise BadRequest("multipart body without a boundary")
        try:
            fields, files = parse_multipart_form(body, str(boundary).encode("utf-8"))
        except Exception:
            raise BadRequest("the multipart body is malformed")
        upload = files.get("file") if files else None
        if upload is None:
            raise BadRequest("send the bank file in a form field named 'file'")
        data, filename = upload.body, upload.name or ""
        options = parse_options(lambda k: fields.get(k))
    elif kind == "application/json":
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the JSON body is malformed")
        if not isinstance(payload, dict):
            raise BadRequest("the JSON body must be an object")
        encoded = payload.get("content_base64")
        if not isinstance(encoded, str) or not encoded:
            raise BadRequest("'content_base64' (the file, base64-encoded) is required")
        filename = payload.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise BadRequest("'filename' is required")
        if len(encoded) > (max_file * 4) // 3 + 8:
            raise BadRequest(f"the file is over {human_size(max_file)}", status=413)
        try:
            data = base64.b64decode(re.sub(r"\s+", "", encoded), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("'content_base64' isn't valid base64")
        options = parse_options(payload.get)
    else:
        raise BadRequest("send multipart/form-data or application/json", status=415)
    if len(data) > max_file:
        raise BadRequest(f"the file is {human_size(len(data))}; the limit is {human_size(max_file)}", status=413)
    return data, filename, options


class UploadInput(RoutesChannel):
    """Rasa input channel (routes only: nobody talks to the bot through it) serving the manual
    upload assistant at ``/upload``."""

    prefix = "/upload"  # absolute: Rasa's urljoin makes it /upload, not /webhooks/upload

    @classmethod
    def name(cls) -> str:
        return "file_upload"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "UploadInput":
        credentials = credentials or {}
        try:
            ttl = float(credentials.get("ttl_seconds") or DEFAULT_TTL)
        except (TypeError, ValueError):
            ttl = DEFAULT_TTL
        return cls(ttl=ttl, allow_origin=str(credentials.get("cors_origin") or "*"))

    def __init__(self, store: Optional[FileStore] = None, ttl: float = DEFAULT_TTL, allow_origin: str = "*",
                 max_file_bytes: Optional[int] = None):
        self.store = store if store is not None else FileStore(ttl=min(max(float(ttl), 1.0), DEFAULT_TTL))
        self.allow_origin = allow_origin
        self.max_file = max_file_bytes or max_input_bytes()
        # base64 in JSON is 4/3 of the file; multipart adds a little
        self.max_body = (self.max_file * 4) // 3 + 64 * 1024

    def _cors(self) -> Dict[str, str]:
        headers = {
            "Access-Control-Allow-Origin": self.allow_origin,
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
        if self.allow_origin != "*":
            headers["Vary"] = "Origin"
        return headers

    def _error(self, message: str, status: int) -> Any:
        return response.json({"error": message}, status=status,
                             headers={**self._cors(), "Cache-Control": "no-store"})

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("file_upload")
        channel = self

        @bp.route("/analyse", methods=["OPTIONS"])
        async def preflight(request: Request) -> Any:
            return response.empty(status=204, headers=channel._cors())

        @bp.route("/files/<token>", methods=["OPTIONS"])
        async def preflight_files(request: Request, token: str) -> Any:
            return response.empty(status=204, headers=channel._cors())

        @bp.route("/analyse", methods=["POST"], stream=True)
        async def analyse_upload(request: Request) -> Any:
            try:
                return await channel._analyse(request)
            except BadRequest as exc:
                return channel._error(str(exc), exc.status)
            except SanicException as exc:
                status = getattr(exc, "status_code", 400) or 400
                return channel._error(str(exc) or "bad request", status if 400 <= status < 500 else 400)
            except Exception:
                logger.exception("upload analysis request failed")
                return channel._error("the upload could not be processed", 400)

        @bp.route("/files/<token>", methods=["GET"])
        async def download(request: Request, token: str) -> Any:
            try:
                found = channel.store.take(token) if TOKEN.match(token or "") else None
            except Exception:
                logger.exception("download failed")
                found = None
            if found is None:
                return channel._error(GONE, 404)
            filename, content = found
            return response.raw(content, content_type="text/csv; charset=utf-8", headers={
                **channel._cors(),
                "Content-Disposition": f'attachment; filename="{_ascii_filename(filename)}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            })

        return bp

    async def _read_body(self, request: Request) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise BadRequest(f"the upload is over {human_size(self.max_body)}", status=413)
        body = bytearray(request.body or b"")  # what Sanic already read (non-streamed requests)
        if request.stream is not None:
            while True:
                chunk = await request.stream.read()
                if chunk is None:
                    break
                body += chunk
                if len(body) > self.max_body:
                    raise BadRequest(f"the upload is over {human_size(self.max_body)}", status=413)
        if len(body) > self.max_body:
            raise BadRequest(f"the upload is over {human_size(self.max_body)}", status=413)
        return bytes(body)

    async def _analyse(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "")
        kind = parse_content_header(content_type)[0].lower()
        if kind not in ("multipart/form-data", "application/json"):
            raise BadRequest("send multipart/form-data or application/json", status=415)
        body = await self._read_body(request)
        data, filename, options = parse_body(body, content_type, self.max_file)
        sender = options.pop("sender", None)
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, functools.partial(analyse, data, filename, **options))
        payload = report.to_dict(include_content=False)
        prefix = request.path[: -len("/analyse")] if request.path.endswith("/analyse") else "/upload"
        for entry, converted in zip(payload["converted"], report.converted):
            token = self.store.put(converted.filename, converted.content)
            entry["download_url"] = f"{prefix}/files/{token}"
            entry["expires_in"] = int(self.store.ttl)
        payload["sender"] = sender
        return response.json(payload, headers={**self._cors(), "Cache-Control": "no-store"})
