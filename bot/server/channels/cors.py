"""Which web pages may call the server from the browser (CORS), route by route.

Rasa's ``--cors`` hands one origin list to sanic-cors for every route (``resources={"/*": ...}``,
credentials allowed), so it cannot say "the widget's host pages may post chat messages, nobody else
may touch the agent console". We start Rasa without ``--cors`` (sanic-cors then adds no headers) and
this module sets the policy on the whole app instead:

* chat endpoints (``/webhooks/rest/...``, ``/chat/history``, ``/upload/...``): the origins listed in
  ``CHAT_ALLOWED_ORIGINS`` (comma-separated, e.g. ``https://www.example.com,https://help.example.com``)
  and the server's own origin get ``Access-Control-Allow-Origin: <that origin>`` and ``Vary: Origin``;
  preflights are answered here. Never ``*``, never ``Access-Control-Allow-Credentials`` (the widget
  sends no cookies);
* the widget's Socket.IO endpoint: the same list, checked by engine.io on every connection (a
  WebSocket is not covered by CORS, so the Origin check is the protection), without credentials;
* public, anonymous resources (``/chat/widget.js`` and the widget's assets, ``/status/outages``)
  keep their ``*`` (no credentials);
* everything else (the agent console and its API, Rasa's HTTP API): same-origin only, every
  ``Access-Control-*`` header is removed, whatever set it.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from sanic import response

from bot.server.channels.proxies import request_origin

logger = logging.getLogger(__name__)

CHAT_PREFIXES = ("/webhooks/rest/", "/chat/history", "/upload/")
PUBLIC_PREFIXES = ("/chat/widget.js", "/chat/static/", "/status/outages")
SOCKET_PREFIX = "/socket.io"
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(raw: str) -> str:
    """``HTTPS://Example.com:443/`` -> ``https://example.com``; ValueError for anything that is not
    a plain http(s) origin (``*``, paths, user info, ...)."""
    text = (raw or "").strip()
    if text == "*":
        raise ValueError("'*' is not allowed: list the sites that embed the chat widget.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"'{text}' is not an origin (scheme://host[:port]).") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        raise ValueError(f"'{text}' is not an origin (scheme://host[:port], http or https).")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"'{text}' is not an origin: no path, query or fragment.")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def parse_origins(raw: Any) -> FrozenSet[str]:
    """A comma-separated string or a list of origins -> normalised set (ValueError names the bad one)."""
    items: Iterable[Any] = raw.split(",") if isinstance(raw, str) else (raw or [])
    found = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"CHAT_ALLOWED_ORIGINS: {item!r} is not an origin.")
        if item.strip():
            try:
                found.add(normalize_origin(item))
            except ValueError as exc:
                raise ValueError(f"CHAT_ALLOWED_ORIGINS: {exc}") from None
    return frozenset(found)


class ChatOrigins:
    """The allow-list of the chat endpoints: the configured origins plus the server's own."""

    def __init__(self, origins: Iterable[str] = ()):
        self.origins = frozenset(origins)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, extra: Any = None) -> "ChatOrigins":
        env = os.environ if env is None else env
        return cls(parse_origins(env.get("CHAT_ALLOWED_ORIGINS", "")) | parse_origins(extra or []))

    def allows(self, origin: Optional[str], request: Any = None) -> bool:
        if not origin or origin == "null":
            return False
        try:
            origin = normalize_origin(origin)
        except ValueError:
            return False
        return origin in self.origins or (request is not None and origin == request_origin(request))

    def __repr__(self) -> str:
        return f"ChatOrigins({sorted(self.origins)!r})"


def route_kind(path: str) -> str:
    if path == SOCKET_PREFIX or path.startswith(SOCKET_PREFIX + "/"):
        return "socket"
    if path.startswith(CHAT_PREFIXES):
        return "chat"
    if path.startswith(PUBLIC_PREFIXES):
        return "public"
    return "private"


def _strip_cors(headers: Any) -> None:
    for key in {k for k in headers.keys() if k.lower().startswith("access-control-")}:
        del headers[key]


def _is_preflight(request: Any) -> bool:
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


def install(app: Any, policy: Optional[ChatOrigins] = None) -> ChatOrigins:
    """Puts the policy on ``app`` (once per process); returns it."""
    existing = getattr(app.ctx, "chat_origins", None)
    if existing is not None:
        return existing
    policy = policy or ChatOrigins.from_env()
    app.ctx.chat_origins = policy

    async def answer_preflight(request: Any) -> Any:
        """Chat preflights are answered here (Rasa's own routes have no OPTIONS handler)."""
        if _is_preflight(request) and route_kind(request.path) == "chat":
            return response.empty(status=204)
        return None

    async def set_headers(request: Any, resp: Any) -> Any:
        if resp is None or getattr(resp, "headers", None) is None:
            return None
        kind = route_kind(request.path)
        if kind == "socket":
            return None  # engine.io applies the same allow-list itself (see protect_socketio)
        if kind == "public":
            resp.headers.pop("access-control-allow-credentials", None)
            return None
        _strip_cors(resp.headers)
        if kind != "chat":
            return None
        resp.headers["Vary"] = "Origin"
        origin = request.headers.get("origin")
        if policy.allows(origin, request):
            resp.headers["Access-Control-Allow-Origin"] = origin
            if _is_preflight(request):
                resp.headers.update(PREFLIGHT_HEADERS)
        return None

    # before sanic-cors' automatic OPTIONS answer (it would take every preflight otherwise)
    app.request_middleware.appendleft(answer_preflight)
    app.register_middleware(set_headers, "response")
    logger.info(
        "Chat endpoints accept cross-origin requests from %s (and the server's own origin).",
        ", ".join(sorted(policy.origins)) or "no other origin",
    )
    return policy


def socketio_origin_check(policy: ChatOrigins) -> Callable[..., bool]:
    """engine.io's ``cors_allowed_origins`` callable: ``(origin, environ) -> allowed``."""

    def allowed(origin: Optional[str], environ: Optional[Dict[str, Any]] = None) -> bool:
        return policy.allows(origin, (environ or {}).get("sanic.request"))

    return allowed


def protect_socketio(sio: Any, extra_origins: Any = None) -> ChatOrigins:
    """Replaces Rasa's ``cors_allowed_origins=[]`` (no Origin check at all) with the chat allow-list;
    no credentials. ``extra_origins``: the socketio channel's ``cors_allowed_origins`` credential."""
    policy = ChatOrigins.from_env(extra=extra_origins)
    sio.eio.cors_allowed_origins = socketio_origin_check(policy)
    sio.eio.cors_credentials = False
    return policy
