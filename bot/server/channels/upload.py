"""Manual upload assistant over HTTP: ``POST /upload/analyse`` checks a bank export against
QuickBooks Online's upload rules and returns the report with download links for the converted
files (``GET /upload/files/<token>``).

``POST /upload/analyse`` takes ``multipart/form-data`` (``file``; optional ``date_order`` MDY/DMY/YMD,
``last_booked`` YYYY-MM-DD, ``region`` e.g. US/UK/CA, ``sender``) or JSON
``{"filename", "content_base64", "date_order", "last_booked", "region", "sender"}``.
Answers: 200 with the report, 400 malformed request, 413 too large, 415 other content types.
Never 5xx. Converted files are kept behind a random token, for one download and at most an hour, in
the product database (``bot.upload.files``: any server replica can serve the link). When the server
has no product database (no ``app.ctx.services``, e.g. the blueprint mounted on its own) they are
kept in this process's memory instead. The uploaded file itself is never stored.

Enable it in ``credentials.yml``::

    bot.server.channels.upload.UploadInput:
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

from bot import client_address, ratelimit, sessions
from bot.server.channels.routes import RoutesChannel
from bot.server.request_guards import RequestGuards
from bot.upload import analyse
from bot.upload.files import DEFAULT_TTL, Download, UploadFiles
from bot.upload.limits import human_size, max_input_bytes

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,100}$")
SENDER = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
REGION = re.compile(r"^[A-Za-z]{2,3}$")
ORDERS = ("MDY", "DMY", "YMD")
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
    content_type: str = "text/csv"


class FileStore:
    """Converted files in this process's memory (the fallback without a product database): a random
    token each, one download, gone after ``ttl`` seconds. Bounded in count and bytes (the oldest go first)."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_files: int = 500,
        max_bytes: int = 64 * 1024 * 1024,
    ):
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

    def put(self, filename: str, content: bytes, content_type: str = "text/csv", sender: Optional[str] = None) -> str:
        self.purge()
        while self._files and (len(self._files) >= self.max_files or self._bytes + len(content) > self.max_bytes):
            self._drop(next(iter(self._files)))
        token = secrets.token_urlsafe(32)
        self._files[token] = _Stored(filename, content, self.clock() + self.ttl, content_type)
        self._bytes += len(content)
        return token

    def take(self, token: str) -> Optional[Download]:
        """The file behind ``token`` (then forgotten), or None when unknown or expired."""
        self.purge()
        item = self._drop(token)
        return (item.filename, item.content, item.content_type) if item else None


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


def parse_options(get: Callable[[str], Any], ids: sessions.SessionIds) -> Dict[str, Any]:
    """The optional fields, validated: ``date_order``, ``last_booked``, ``region``, ``sender`` (an id
    that ``ids`` issued)."""
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
        if not (ids.verify(sender, sessions.REST) or ids.verify(sender, sessions.WEB)):
            # the converted files are filed under this conversation: only its owner may name it
            raise BadRequest(
                "sender must be the conversation id the chat server issued (POST /webhooks/rest/session, "
                "or the widget's session id); leave it out to upload without a conversation",
                status=403,
            )
        out["sender"] = sender
    return out


def parse_body(body: bytes, content_type: str, max_file: int, ids: sessions.SessionIds) -> Tuple[bytes, str, Dict[str, Any]]:
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
        options = parse_options(lambda k: fields.get(k), ids)
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
        options = parse_options(payload.get, ids)
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

    def __init__(
        self,
        store: Optional[Any] = None,
        ttl: float = DEFAULT_TTL,
        allow_origin: str = "*",
        max_file_bytes: Optional[int] = None,
        install_services: bool = True,
    ):
        self.ttl = min(max(float(ttl), 1.0), DEFAULT_TTL)
        # ``store``: a fixed file store (tests). Otherwise the product database of the running
        # server (app.ctx.services.database), or this in-memory fallback when it has none.
        self.fixed_store = store
        self.memory_store = FileStore(ttl=self.ttl)
        self.install_services = install_services
        self._db_stores: Dict[int, UploadFiles] = {}
        self.allow_origin = allow_origin
        self.max_file = max_file_bytes or max_input_bytes()
        # base64 in JSON is 4/3 of the file; multipart adds a little
        self.max_body = (self.max_file * 4) // 3 + 64 * 1024

    @property
    def store(self) -> Any:
        """The file store used when there is no running server to ask (kept for callers and tests)."""
        return self.fixed_store if self.fixed_store is not None else self.memory_store

    def files_for(self, app: Any) -> Any:
        """Where converted files go for requests of ``app``: the product database when the server
        has one, else this process's memory."""
        if self.fixed_store is not None:
            return self.fixed_store
        services = getattr(getattr(app, "ctx", None), "services", None) if app is not None else None
        product_db = getattr(services, "database", None)
        if product_db is None:
            return self.memory_store
        found = self._db_stores.get(id(product_db))
        if found is None or found.db is not product_db:
            found = self._db_stores[id(product_db)] = UploadFiles(product_db, ttl=self.ttl)
        return found

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
        return response.json({"error": message}, status=status, headers={**self._cors(), "Cache-Control": "no-store"})

    def _too_many(self, decision: ratelimit.Decision) -> Any:
        """429 with Retry-After: nothing was analysed or kept; the same file can be sent again later."""
        return response.json(
            ratelimit.too_many_body(decision, ratelimit.UPLOADS_SLOW_DOWN),
            status=429,
            headers={**self._cors(), **ratelimit.too_many_headers(decision), "Cache-Control": "no-store"},
        )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("file_upload")
        channel = self

        if self.install_services:

            @bp.listener("before_server_start")
            async def install(app: Any, _loop: Any) -> None:
                if getattr(app.ctx, "services", None) is not None:
                    return  # already there (another channel, or a test, installed it)
                try:
                    from bot.server.services import Services

                    await Services.install(app)
                except Exception:
                    logger.exception("No product database: converted files are kept in this process's memory.")

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
            found = None
            if TOKEN.match(token or ""):
                try:
                    found = await asyncio.to_thread(channel.files_for(request.app).take, token)
                except Exception:
                    logger.exception("download failed")
                    found = None
                if found is None and channel.memory_store is not channel.files_for(request.app):
                    found = channel.memory_store.take(token)  # kept here while the database was down
            if found is None:
                return channel._error(GONE, 404)
            filename, content, stored_type = found
            served = "text/csv; charset=utf-8" if stored_type.split(";")[0].strip() == "text/csv" else "application/octet-stream"
            return response.raw(
                content,
                content_type=served,
                headers={
                    **channel._cors(),
                    "Content-Disposition": f'attachment; filename="{_ascii_filename(filename)}"',
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                },
            )

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
        # upload quotas per client address: a count, then the bytes once they are read
        guards, address = RequestGuards.of(request.app), client_address.from_request(request)
        limiter = guards.limiter
        decision = await limiter.check("uploads_per_address", address)
        if not decision.allowed:
            return self._too_many(decision)
        body = await self._read_body(request)
        decision = await limiter.check("upload_bytes_per_address", address, cost=len(body))
        if not decision.allowed:
            return self._too_many(decision)
        data, filename, options = parse_body(body, content_type, self.max_file, guards.session_ids)
        sender = options.pop("sender", None)
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, functools.partial(analyse, data, filename, **options))
        payload = report.to_dict(include_content=False)
        prefix = request.path[: -len("/analyse")] if request.path.endswith("/analyse") else "/upload"
        files = self.files_for(request.app)
        for entry, converted in zip(payload["converted"], report.converted):
            content_type = entry.get("content_type") or "text/csv"
            try:
                token = await asyncio.to_thread(files.put, converted.filename, converted.content, content_type, sender)
                ttl = files.ttl
            except Exception:
                # the product database is unreachable: this replica keeps the file (better than no link)
                logger.exception("could not store a converted file in the product database; keeping it in memory")
                token = self.memory_store.put(converted.filename, converted.content, content_type, sender)
                ttl = self.memory_store.ttl
            entry["download_url"] = f"{prefix}/files/{token}"
            entry["expires_in"] = int(ttl)
        payload["sender"] = sender
        return response.json(payload, headers={**self._cors(), "Cache-Control": "no-store"})
