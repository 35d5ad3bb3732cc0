"""The agent console: web page at ``/agent/`` and its JSON API under ``/agent/api/``.

Everything but the sign-in page and its assets needs a signed-in agent: the session cookie set by
``POST /agent/api/login`` (HttpOnly, SameSite=Strict; state-changing requests must also carry
``X-Requested-With``), or ``Authorization: Bearer <token>`` for other tools. See README "Agent console".
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request

from actions.escalation import summary_text
from bot.redaction import ROUTING_METADATA_KEYS, redact_value
from bot.handoff.service import HandoffService
from bot.handoff.store import HandoffError, TicketConflict, TicketNotFound

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "agent_session"
SESSION_TTL = 12 * 3600
SSE_POLL_SECONDS = 0.5
SSE_HEARTBEAT_SECONDS = 15.0
MAX_BODY_TEXT = 10_000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def error(message: str, status: int) -> response.HTTPResponse:
    return response.json({"error": message}, status=status, headers=SECURITY_HEADERS)


def ok(data: Any, status: int = 200) -> response.HTTPResponse:
    return response.json(data, status=status, headers=SECURITY_HEADERS)


def body(request: Request) -> Dict[str, Any]:
    """The JSON object sent with the request, or an empty dict; 400 for anything else."""
    if not request.body:
        return {}
    if "application/json" not in (request.content_type or ""):
        raise SanicException("Send JSON (Content-Type: application/json).", status_code=415)
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise SanicException("The request body is not valid JSON.", status_code=400)
    if not isinstance(data, dict):
        raise SanicException("The request body must be a JSON object.", status_code=400)
    return data


def text_field(data: Dict[str, Any], name: str, required: bool = True) -> Optional[str]:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise SanicException(f"'{name}' must be a non-empty string.", status_code=400)
    if len(value) > MAX_BODY_TEXT:
        raise SanicException(f"'{name}' is too long (at most {MAX_BODY_TEXT} characters).", status_code=413)
    return value.strip()


def console_blueprint() -> Blueprint:
    bp = Blueprint("agent_console")

    HandoffService.attach(bp)

    def service(request: Request) -> HandoffService:
        return request.app.ctx.handoff

    async def signed_in(request: Request) -> Any:
        """The agent making the request, or None."""
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        via_cookie = token is None
        token = token or request.cookies.get(COOKIE)
        if not token:
            return None
        if via_cookie and request.method not in ("GET", "HEAD") and request.headers.get("x-requested-with") != "console":
            return None  # a cookie alone never authorises a change (cross-site request forgery)
        svc = service(request)
        return await svc.run(svc.store.agent_for_session, token)

    def requires_agent(handler):
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            agent = await signed_in(request)
            if agent is None:
                return error("Sign in first.", 401)
            try:
                return await handler(request, agent, *args, **kwargs)
            except TicketNotFound:
                return error("No such ticket.", 404)
            except TicketConflict as exc:
                return error(str(exc) or "That ticket has moved on.", 409)
            except ValueError as exc:
                return error(str(exc), 400)

        wrapper.__name__ = handler.__name__
        return wrapper

    async def ticket_json(svc: HandoffService, ticket: Any) -> Dict[str, Any]:
        data = ticket.to_dict()
        data["summary_text"] = summary_text(ticket.summary or {})
        data["queue_position"] = await svc.run(svc.store.queue_position, ticket.id) if ticket.status == "waiting" else None
        last = await svc.run(svc.store.messages, ticket.id)
        data["last_message"] = last[-1].to_dict() if last else None
        return redact_value(data, ROUTING_METADATA_KEYS)  # defence in depth: the store holds masked text already

    # --------------------------------------------------------------- the page
    @bp.route("/", methods=["GET"])
    async def index(request: Request) -> Any:
        return await response.file(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)

    bp.static("/static", str(STATIC_DIR), name="console_static")

    # --------------------------------------------------------------- sign-in
    @bp.route("/api/login", methods=["POST"])
    async def login(request: Request) -> Any:
        data = body(request)
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024:
            return error("Username and password are required.", 400)
        svc = service(request)
        agent = await svc.run(svc.store.authenticate, username, password)
        if agent is None:
            return error("Wrong username or password.", 401)
        token = await svc.run(svc.store.create_session, agent.id, SESSION_TTL)
        resp = ok({"agent": agent.to_dict(), "token": token})
        resp.cookies[COOKIE] = token
        resp.cookies[COOKIE]["httponly"] = True
        resp.cookies[COOKIE]["samesite"] = "Strict"
        resp.cookies[COOKIE]["path"] = "/agent"
        resp.cookies[COOKIE]["max-age"] = SESSION_TTL
        resp.cookies[COOKIE]["secure"] = request.scheme == "https"
        return resp

    @bp.route("/api/logout", methods=["POST"])
    @requires_agent
    async def logout(request: Request, agent: Any) -> Any:
        svc = service(request)
        token = request.cookies.get(COOKIE) or request.headers.get("authorization", "")[7:].strip()
        await svc.run(svc.store.revoke_session, token)
        resp = response.empty(status=204, headers=SECURITY_HEADERS)
        resp.cookies[COOKIE] = ""
        resp.cookies[COOKIE]["path"] = "/agent"
        resp.cookies[COOKIE]["max-age"] = 0
        return resp

    @bp.route("/api/me", methods=["GET"])
    @requires_agent
    async def me(request: Request, agent: Any) -> Any:
        return ok({"agent": agent.to_dict()})

    # --------------------------------------------------------------- tickets
    @bp.route("/api/tickets", methods=["GET"])
    @requires_agent
    async def tickets(request: Request, agent: Any) -> Any:
        svc = service(request)
        raw = request.args.get("status", "waiting,assigned")
        statuses = [s for s in raw.split(",") if s]
        unknown = set(statuses) - {"waiting", "assigned", "returned_to_bot", "closed"}
        if unknown:
            return error(f"Unknown status: {', '.join(sorted(unknown))}", 400)
        found = await svc.run(svc.store.list_tickets, statuses)
        return ok({"tickets": [await ticket_json(svc, t) for t in found]})

    @bp.route("/api/tickets/<ticket_id:int>", methods=["GET"])
    @requires_agent
    async def ticket(request: Request, agent: Any, ticket_id: int) -> Any:
        svc = service(request)
        t = await svc.run(svc.store.get_ticket, ticket_id)
        messages = await svc.run(svc.store.messages, ticket_id)
        return ok(
            redact_value({
                "ticket": await ticket_json(svc, t),
                "summary": t.summary or {},
                "transcript": t.transcript or [],
                "messages": [m.to_dict() for m in messages],
            }, ROUTING_METADATA_KEYS)
        )

    @bp.route("/api/tickets/<ticket_id:int>/claim", methods=["POST"])
    @requires_agent
    async def claim(request: Request, agent: Any, ticket_id: int) -> Any:
        svc = service(request)
        return ok({"ticket": await ticket_json(svc, await svc.claim(ticket_id, agent))})

    @bp.route("/api/tickets/<ticket_id:int>/messages", methods=["POST"])
    @requires_agent
    async def reply(request: Request, agent: Any, ticket_id: int) -> Any:
        text = text_field(body(request), "text")
        message = await service(request).reply(ticket_id, agent, text)
        return ok({"message": message.to_dict()}, status=201)

    @bp.route("/api/tickets/<ticket_id:int>/return", methods=["POST"])
    @requires_agent
    async def hand_back(request: Request, agent: Any, ticket_id: int) -> Any:
        note = text_field(body(request), "note", required=False)
        svc = service(request)
        return ok({"ticket": await ticket_json(svc, await svc.hand_back(ticket_id, agent, note))})

    @bp.route("/api/tickets/<ticket_id:int>/close", methods=["POST"])
    @requires_agent
    async def close(request: Request, agent: Any, ticket_id: int) -> Any:
        note = text_field(body(request), "note")
        svc = service(request)
        return ok({"ticket": await ticket_json(svc, await svc.close(ticket_id, agent, note))})

    @bp.route("/api/stats", methods=["GET"])
    @requires_agent
    async def stats(request: Request, agent: Any) -> Any:
        svc = service(request)
        return ok(await svc.run(svc.store.stats))

    @bp.route("/api/outages", methods=["GET"])
    @requires_agent
    async def outages(request: Request, agent: Any) -> Any:
        """Current and recent suspected bank outages, counts and a 24-hour timeline."""
        svc = service(request)
        return ok(await svc.run(svc.notifier.radar.status))

    # --------------------------------------------------------------- live updates (server-sent events)
    @bp.route("/api/events", methods=["GET"])
    @requires_agent
    async def events(request: Request, agent: Any) -> Any:
        svc = service(request)
        start = request.headers.get("last-event-id") or request.args.get("after")
        try:
            cursor = int(start) if start not in (None, "") else await svc.run(svc.store.latest_event_id)
        except ValueError:
            return error("'after' must be an event id (an integer).", 400)

        async def stream(resp: Any) -> None:
            nonlocal cursor
            idle = 0.0
            await resp.write("retry: 2000\n\n")
            while True:
                found = await svc.run(svc.store.events_after, cursor)
                for event in found:
                    cursor = event.id
                    payload = json.dumps(redact_value(event.to_dict(), ROUTING_METADATA_KEYS))
                    await resp.write(f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n")
                if found:
                    idle = 0.0
                else:
                    idle += SSE_POLL_SECONDS
                    if idle >= SSE_HEARTBEAT_SECONDS:
                        await resp.write(": keep-alive\n\n")  # also detects a gone client
                        idle = 0.0
                await asyncio.sleep(SSE_POLL_SECONDS)

        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return response.stream(stream, content_type="text/event-stream; charset=utf-8", headers=headers)

    @bp.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> Any:
        return error(str(exc), getattr(exc, "status_code", 400) or 400)

    return bp


__all__ = ["console_blueprint", "HandoffError"]
