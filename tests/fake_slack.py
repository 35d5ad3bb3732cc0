"""A local stand-in for Slack's Web API (``https://slack.com/api/``) on 127.0.0.1.

Point the bot's ``slack_api_url`` at ``FakeSlack.api_url``. Every call is recorded; the methods the
bot uses answer like Slack does (HTTP 200, ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``):

* ``chat.postMessage`` / ``chat.update``: form or JSON body, ``Authorization: Bearer <token>`` (or a
  ``token`` field) checked; each post is kept as a ``Post`` (channel, thread_ts, text, blocks, ts);
  their ``blocks`` are read with slack_sdk's Block Kit models (:func:`block_models`: every block of a
  type slack_sdk knows, valid by its ``validate_json``, and round-tripping unchanged through
  ``Block.parse(...).to_dict()``), else answered ``{"ok": false, "error": "invalid_blocks"}`` as Slack
  does and kept in ``invalid`` (tests assert it stays empty); the message Slack shows back (interaction
  payloads) carries a ``block_id`` on every block, as Slack assigns one when the sender gave none;
* ``auth.test``, ``conversations.open``: plausible answers;
* shared files: ``add_file()`` serves bytes at ``/files/<id>/<name>`` (the ``url_private_download`` of
  the file object it returns) to the bot token only; every fetch is kept in ``downloads``;
* ``files_upload_v2`` as slack_sdk does it: ``files.getUploadURLExternal`` -> ``POST /upload/v1/<id>``
  (the bytes) -> ``files.completeUploadExternal`` (channel, thread); each file is kept as an ``Upload``;
* anything else: ``{"ok": false, "error": "unknown_method"}`` (recorded, so tests can assert on it).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement

BOT_USER_ID = "UFAKEBOT1"
BOT_ID = "BFAKEBOT1"
TEAM_ID = "TFAKETEAM"


def block_models(blocks: Any) -> List[Block]:
    """``blocks`` as slack_sdk's Block Kit models; ValueError (why) unless every block parses to a known
    block type, passes slack_sdk's validation, and ``to_dict()`` gives back exactly what was sent."""
    if not isinstance(blocks, list):
        raise ValueError(f"blocks is not a list: {blocks!r}")
    models = []
    for i, raw in enumerate(blocks):
        try:
            model = Block.parse(raw) if isinstance(raw, dict) else None
            if model is None:
                raise ValueError(f"block {i} is not a Block Kit block slack_sdk knows: {raw!r}")
            model.validate_json()
            back = model.to_dict()  # validates the nested elements and text objects too
        except (SlackObjectFormationError, TypeError, AttributeError) as error:
            raise ValueError(f"block {i} is invalid: {type(error).__name__}: {error}") from None
        if back != raw:
            raise ValueError(f"block {i} does not round-trip through slack_sdk: sent {raw!r}, parsed {back!r}")
        models.append(model)
    return models


@dataclass
class Call:
    method: str
    params: Dict[str, Any]
    authorized: bool
    content_type: str


@dataclass
class Post:
    channel: str
    thread_ts: Optional[str]
    text: str
    blocks: List[Dict[str, Any]]
    ts: str
    params: Dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def models(self) -> List[Block]:
        """The message's blocks as slack_sdk models (validated and round-tripped: :func:`block_models`)."""
        return block_models(self.blocks)

    @property
    def button_elements(self) -> List[ButtonElement]:
        """Every button of the message, as slack_sdk's ``ButtonElement``."""
        return [
            element
            for block in self.models
            if isinstance(block, ActionsBlock)
            for element in block.elements
            if isinstance(element, ButtonElement)
        ]

    @property
    def buttons(self) -> List[Tuple[str, str]]:
        """(title, value) of every button in the message's blocks."""
        return [(element.text.text, element.value) for element in self.button_elements]

    def shown_blocks(self) -> List[Dict[str, Any]]:
        """The blocks as Slack shows them back: a ``block_id`` on each (Slack assigns one if none was sent)."""
        return [{**block, "block_id": block.get("block_id") or f"{self.ts}-{i}"} for i, block in enumerate(self.blocks)]

    def as_message(self) -> Dict[str, Any]:
        """The message as Slack shows it in an interaction payload's ``message``."""
        message = {
            "type": "message",
            "bot_id": BOT_ID,
            "user": BOT_USER_ID,
            "text": self.text,
            "ts": self.ts,
            "blocks": self.shown_blocks(),
        }
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        return message


@dataclass
class Upload:
    file_id: str
    channel: Optional[str]
    thread_ts: Optional[str]
    filename: str
    title: str
    content: bytes


@dataclass
class Download:
    file_id: str
    authorized: bool


class FakeSlack:
    def __init__(self, token: str):
        self.token = token
        self.calls: List[Call] = []
        self.posts: List[Post] = []
        self.updates: List[Dict[str, Any]] = []
        self.invalid: List[Dict[str, Any]] = []  # posts and updates refused for their blocks: (method, why, params)
        self.shared: Dict[str, bytes] = {}  # file id -> content served at /files/<id>/<name>
        self.downloads: List[Download] = []
        self.uploads: List[Upload] = []
        self._pending_uploads: Dict[str, Dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._server: Optional[ThreadingHTTPServer] = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeSlack":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                fake._serve(self)

            def do_GET(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        assert self._server, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # ------------------------------------------------------------------ what tests look at
    def posts_to(self, channel: str, thread_ts: Optional[str] = None, *, any_thread: bool = False) -> List[Post]:
        with self._cond:
            return [p for p in self.posts if p.channel == channel and (any_thread or p.thread_ts == thread_ts)]

    def wait_for_posts(
        self,
        count: int,
        channel: str,
        thread_ts: Optional[str] = None,
        *,
        after: int = 0,
        timeout: float = 20.0,
        until: Optional[Callable[[List[Post]], bool]] = None,
    ) -> List[Post]:
        """Waits until ``channel``/``thread_ts`` has at least ``after + count`` posts (and ``until`` holds
        for the new ones, if given); returns the posts after the first ``after``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                posts = [p for p in self.posts if p.channel == channel and p.thread_ts == thread_ts][after:]
                if len(posts) >= count and (until is None or until(posts)):
                    return posts
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} post(s) to {channel}/{thread_ts} after {after}, got {len(posts)}: "
                        f"{[p.text for p in posts]}; all posts: {[(p.channel, p.thread_ts, p.text[:40]) for p in self.posts]}; "
                        f"refused for their blocks: {[i['why'] for i in self.invalid]}"
                    )
                self._cond.wait(remaining)

    def unknown_calls(self) -> List[Call]:
        known = (
            "chat.postMessage",
            "chat.update",
            "auth.test",
            "conversations.open",
            "files.getUploadURLExternal",
            "files.completeUploadExternal",
        )
        with self._cond:
            return [c for c in self.calls if c.method not in known]

    # ------------------------------------------------------------------ shared files and uploads
    def add_file(
        self, name: str, content: bytes, *, size: Optional[int] = None, url: Optional[str] = None, **extra: Any
    ) -> Dict[str, Any]:
        """A file the user shares: its bytes are served to the bot token; the Slack file object."""
        file_id = f"F{next(self._seq):08d}"
        with self._cond:
            self.shared[file_id] = content
        base = self.api_url[: -len("/api/")]
        download = url or f"{base}/files/{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": "text/csv",
            "filetype": "csv",
            "size": len(content) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "url_private": download,
            "url_private_download": download,
            **extra,
        }

    def downloads_of(self, file_id: str) -> List[Download]:
        with self._cond:
            return [d for d in self.downloads if d.file_id == file_id]

    def wait_for_uploads(
        self, count: int, channel: str, thread_ts: Optional[str] = None, *, timeout: float = 20.0
    ) -> List[Upload]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [u for u in self.uploads if u.channel == channel and u.thread_ts == thread_ts]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} upload(s) to {channel}/{thread_ts}, got {len(found)}; "
                        f"all: {[(u.channel, u.thread_ts, u.filename) for u in self.uploads]}"
                    )
                self._cond.wait(remaining)

    def _serve_file(self, request: BaseHTTPRequestHandler, path: str) -> None:
        parts = path.split("/")  # "", "files", id, name
        file_id = parts[2] if len(parts) > 2 else ""
        auth = request.headers.get("Authorization") or ""
        authorized = auth == f"Bearer {self.token}"
        with self._cond:
            self.downloads.append(Download(file_id, authorized))
            content = self.shared.get(file_id)
        if not authorized:  # Slack answers a login page; a 403 is enough here
            return self._reply(request, 403, {"ok": False, "error": "not_authed"})
        if content is None:
            return self._reply(request, 404, {"ok": False, "error": "file_not_found"})
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        try:
            request.wfile.write(content)
        except OSError:  # the bot stopped reading (size cap)
            pass

    def _receive_upload(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> None:
        file_id = path.rsplit("/", 1)[-1]
        with self._cond:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return self._reply(request, 404, {"ok": False, "error": "unknown_upload"})
            pending["content"] = raw
        data = f"OK - {len(raw)}".encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/plain")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _get_upload_url(self, params: Dict[str, Any]) -> Dict[str, Any]:
        filename, length = params.get("filename"), str(params.get("length") or "")
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"FUP{next(self._seq):07d}"
        with self._cond:
            self._pending_uploads[file_id] = {"filename": str(filename), "length": int(length)}
        base = self.api_url[: -len("/api/")]
        return {"ok": True, "upload_url": f"{base}/upload/v1/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: Dict[str, Any]) -> Dict[str, Any]:
        files = params.get("files")
        try:
            files = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            return {"ok": False, "error": "invalid_json"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        done = []
        with self._cond:
            for f in files:
                pending = self._pending_uploads.pop(str(f.get("id")), None)
                if pending is None or "content" not in pending or len(pending["content"]) != pending["length"]:
                    return {"ok": False, "error": "file_not_found"}
                upload = Upload(
                    str(f["id"]),
                    params.get("channel_id") or None,
                    params.get("thread_ts") or None,
                    pending["filename"],
                    str(f.get("title") or pending["filename"]),
                    pending["content"],
                )
                self.uploads.append(upload)
                done.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
            self._cond.notify_all()
        return {"ok": True, "files": done}

    # ------------------------------------------------------------------ the Web API
    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        if url.path.startswith("/files/") and request.command == "GET":
            return self._serve_file(request, url.path)
        if url.path.startswith("/upload/v1/") and request.command == "POST":
            return self._receive_upload(request, url.path, request.rfile.read(length) if length else b"")
        if not url.path.startswith("/api/"):
            return self._reply(request, 404, {"ok": False, "error": "not_found"})
        method = url.path[len("/api/") :]
        raw = request.rfile.read(length) if length else b""
        content_type = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

        params: Dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if content_type == "application/json" and raw:
                params.update(json.loads(raw))
            elif raw:
                params.update({k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()})
        except ValueError:
            return self._reply(request, 200, {"ok": False, "error": "invalid_json"})
        for key in ("blocks", "attachments"):  # form-encoded bodies carry these as JSON strings
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    return self._reply(request, 200, {"ok": False, "error": f"invalid_{key}"})

        auth = request.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.pop("token", None)
        authorized = token == self.token
        with self._cond:
            self.calls.append(Call(method, params, authorized, content_type))
        if not token:
            return self._reply(request, 200, {"ok": False, "error": "not_authed"})
        if not authorized:
            return self._reply(request, 200, {"ok": False, "error": "invalid_auth"})

        if method in ("chat.postMessage", "chat.update") and "blocks" in params:
            try:
                block_models(params["blocks"])
            except ValueError as why:
                with self._cond:
                    self.invalid.append({"method": method, "why": str(why), "params": params})
                    self._cond.notify_all()
                return self._reply(request, 200, {"ok": False, "error": "invalid_blocks", "errors": [str(why)]})

        handler = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "auth.test": lambda p: {
                "ok": True,
                "url": "https://fake-workspace.slack.com/",
                "team": "Fake",
                "user": "bankfeed",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            },
            "conversations.open": self._open,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)
        if handler is None:
            return self._reply(request, 200, {"ok": False, "error": "unknown_method"})
        self._reply(request, 200, handler(params))

    def _post_message(self, params: Dict[str, Any]) -> Dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        text, blocks = params.get("text") or "", params.get("blocks") or []
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        ts = f"{int(time.time())}.{next(self._seq):06d}"
        post = Post(str(channel), params.get("thread_ts") or None, str(text), list(blocks), ts, params)
        with self._cond:
            self.posts.append(post)
            self._cond.notify_all()
        message = post.as_message()
        return {"ok": True, "channel": post.channel, "ts": ts, "message": message}

    def _update(self, params: Dict[str, Any]) -> Dict[str, Any]:
        if not params.get("channel") or not params.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        with self._cond:
            self.updates.append(params)
            self._cond.notify_all()
        return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": params.get("text", "")}

    def _open(self, params: Dict[str, Any]) -> Dict[str, Any]:
        users = str(params.get("users") or "")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0].lstrip("U")}}

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
