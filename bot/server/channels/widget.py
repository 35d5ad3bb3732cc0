"""Serves the website chat widget (``/chat/widget.js``), its demo page (``/chat/``) and history.

The widget talks to the socketio channel; ``GET /chat/history?session_id=...`` returns the
conversation so far, so a reload or a reconnect after a network drop shows every message.
The session id is the one the server issued to the browser (``session_confirm``, ``bot.sessions``):
the only key to the history. Any other id (missing: 400; made up, expired by a new secret, or of
another channel: 403) reads nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request

from bot import sessions
from bot.redaction import redact
from bot.server.channels.routes import RoutesChannel
from bot.server.request_guards import RequestGuards

STATIC_DIR = Path(__file__).resolve().parent.parent / "widget" / "static"
NOT_A_SESSION = "Unknown or invalid session_id: use the id the chat server confirmed (session_confirm)."
HISTORY_LIMIT = 500
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def history_from_events(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The user and bot messages of a tracker's events, as the widget renders them (secrets masked again:
    the tracker store masked them when it saved them; this is defence in depth)."""
    lines: List[Dict[str, Any]] = []
    for event in events[-HISTORY_LIMIT * 4 :]:
        kind = event.get("event")
        if kind == "user":
            text = event.get("text") or ""
            if text.startswith("/"):
                continue  # a quick-reply payload: the widget shows the button title it sent
            lines.append({"sender": "user", "text": redact(text), "timestamp": event.get("timestamp")})
        elif kind == "bot":
            data = event.get("data") or {}
            lines.append(
                {
                    "sender": "bot",
                    "text": redact(event.get("text") or ""),
                    "buttons": data.get("buttons") or [],
                    "custom": data.get("custom") or None,
                    "timestamp": event.get("timestamp"),
                }
            )
    return lines[-HISTORY_LIMIT:]


class ChatWidgetInput(RoutesChannel):
    prefix = "/chat"

    @classmethod
    def name(cls) -> str:
        return "chat_widget"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("chat_widget")

        @bp.route("/", methods=["GET"])
        async def demo(request: Request) -> Any:
            return await response.file(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

        bp.static("/static", str(STATIC_DIR), name="widget_static")

        @bp.route("/widget.js", methods=["GET"])
        async def widget_js(request: Request) -> Any:
            return await response.file(STATIC_DIR / "widget.js", headers={"Access-Control-Allow-Origin": "*"})

        @bp.route("/history", methods=["GET"])
        async def history(request: Request) -> Any:
            session_id = request.args.get("session_id", "")
            cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
            if not session_id:
                return response.json({"error": "'session_id' is required"}, status=400, headers=cors)
            if not RequestGuards.of(request.app).session_ids.verify(session_id, sessions.WEB):
                return response.json({"error": NOT_A_SESSION}, status=403, headers=cors)
            store = request.app.ctx.agent.tracker_store
            tracker = await store.retrieve_full_tracker(session_id)
            events = [e.as_dict() for e in tracker.events] if tracker else []
            return response.json({"messages": history_from_events(events)}, headers=cors)

        return bp
