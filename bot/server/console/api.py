"""The agent console: web page at ``/agent/`` and its JSON API under ``/agent/api/``.

Everything but the sign-in page and its assets needs a signed-in agent: the session cookie set by
``POST /agent/api/login`` (HttpOnly, SameSite=Strict, Secure over TLS; state-changing requests must
also carry the session's ``X-CSRF-Token``, see ``bot.server.console.csrf``), or ``Authorization: Bearer
<token>`` for other tools (no ambient credential, so no CSRF token). Sign-in is limited per account
and per client address (``bot.server.console.login_guard``) and its password hashing runs in a small bounded
pool (``bot.server.console.pool``). See README "Hand-off JSON API".

Settings (environment): ``CONSOLE_STREAMS_PER_AGENT`` (3) live event streams per agent and process,
``CONSOLE_SESSION_CHECK_SECONDS`` (5) how often a stream re-checks its session (also before every
batch of events), ``LOGIN_HASH_WORKERS`` (1) and ``LOGIN_HASH_QUEUE`` (8) the password pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request

from bot.handoff.escalation import summary_text
from bot.handoff.views import HandoffError, TicketConflict, TicketNotFound
from bot.redaction import ROUTING_METADATA_KEYS, redact_value
from bot.server.channels import policy
from bot.server.channels.proxies import request_client_address, request_is_https
from bot.server.console import csrf
from bot.server.console.login_guard import GuardUnavailable, LoginGuard
from bot.server.console.pool import BoundedPool, PoolBusy
from bot.server.services import Services

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "agent_session"
SESSION_TTL = 12 * 3600
SSE_POLL_SECONDS = 0.5
SSE_HEARTBEAT_SECONDS = 15.0
MAX_BODY_TEXT = 10_000
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
WRONG_CREDENTIALS = "Wrong username or password."
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def error(message: str, status: int) -> response.HTTPResponse:
    return response.json({"error": message}, status=status, headers=SECURITY_HEADERS)


def too_busy(message: str, status: int, retry_after: float) -> response.HTTPResponse:
    """429/503 with ``Retry-After`` (whole seconds)."""
    return response.json(
        {"error": message}, status=status, headers={**SECURITY_HEADERS, "Retry-After": str(max(1, int(-(-retry_after // 1))))}
    )


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


def _setting(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}.")
    return value


class StreamSlots:
    """Live event streams open per agent in this process (a cap against runaway tabs and scripts)."""

    def __init__(self, per_agent: int):
        self.per_agent = per_agent
        self._open: Dict[int, int] = {}
        self._lock = threading.Lock()

    def acquire(self, agent_id: int) -> bool:
        with self._lock:
            if self._open.get(agent_id, 0) >= self.per_agent:
                return False
            self._open[agent_id] = self._open.get(agent_id, 0) + 1
            return True

    def release(self, agent_id: int) -> None:
        with self._lock:
            left = self._open.get(agent_id, 0) - 1
            if left > 0:
                self._open[agent_id] = left
            else:
                self._open.pop(agent_id, None)


class ConsoleRuntime:
    """The per-process parts of the console: sign-in limits, the password pool, stream slots."""

    def __init__(self, env: Optional[Mapping[str, str]] = None):
        env = os.environ if env is None else env
        self.guard = LoginGuard.from_env(env)
        self.hash_pool = BoundedPool(
            workers=int(_setting(env, "LOGIN_HASH_WORKERS", 1, 1)),
            queue=int(_setting(env, "LOGIN_HASH_QUEUE", 8, 0)),
            name="password-hash",
        )
        self.streams = StreamSlots(int(_setting(env, "CONSOLE_STREAMS_PER_AGENT", 3, 1)))
        self.session_check = _setting(env, "CONSOLE_SESSION_CHECK_SECONDS", 5.0, 0.5)


def session_token(request: Request) -> Tuple[Optional[str], bool]:
    """The session token the request carries, and whether it came in the cookie (not a bearer header)."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None, False
    return request.cookies.get(COOKIE) or None, True


def login_key(username: str) -> str:
    """The account a sign-in attempt counts against (normalised like the store's usernames)."""
    return username.strip().lower()[:128]


def console_blueprint() -> Blueprint:
    bp = Blueprint("agent_console")

    Services.attach(bp)

    @bp.listener("before_server_start")
    async def set_up(app: Any, _loop: Any) -> None:
        policy.install(app)
        app.ctx.console = ConsoleRuntime()

    @bp.listener("after_server_stop")
    async def tear_down(app: Any, _loop: Any) -> None:
        runtime = getattr(app.ctx, "console", None)
        if runtime is not None:
            runtime.hash_pool.shutdown()

    def services(request: Request) -> Services:
        return request.app.ctx.services

    def runtime(request: Request) -> ConsoleRuntime:
        return request.app.ctx.console

    def requires_agent(handler):
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            token, via_cookie = session_token(request)
            if not token:
                return error("Sign in first.", 401)
            if via_cookie and request.method not in SAFE_METHODS and not csrf.valid(token, request.headers.get(csrf.HEADER)):
                # the cookie comes with any request the browser sends, even one a hostile page triggers
                return error("Missing or wrong CSRF token (X-CSRF-Token): reload the console.", 403)
            svc = services(request)
            agent = await svc.run(svc.agents.agent_for_session, token)
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

    async def ticket_json(svc: Services, ticket: Any) -> Dict[str, Any]:
        data = ticket.to_dict()
        data["summary_text"] = summary_text(ticket.summary or {})
        data["queue_position"] = await svc.run(svc.tickets.queue_position, ticket.id) if ticket.status == "waiting" else None
        last = await svc.run(svc.tickets.messages, ticket.id)
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
        if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024 or len(username) > 1024:
            return error("Username and password are required.", 400)
        rt, svc = runtime(request), services(request)
        account, address = login_key(username), request_client_address(request)
        try:
            wait = rt.guard.begin(account, address)
        except GuardUnavailable:
            return too_busy("Sign-in is unavailable for a moment. Try again shortly.", 503, 5)
        if wait:
            minutes = max(1, -(-wait // 60))
            return too_busy(f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.", 429, wait)
        try:
            agent = await rt.hash_pool.run(svc.agents.authenticate, username, password)
        except PoolBusy:
            return too_busy("Many people are signing in right now. Try again in a few seconds.", 503, 2)
        try:
            if agent is None:
                rt.guard.failed(account, address)
            else:
                rt.guard.succeeded(account)
        except GuardUnavailable:
            pass  # the attempt was counted before the check; nothing more to keep
        if agent is None:
            return error(WRONG_CREDENTIALS, 401)
        token = await svc.run(svc.agents.create_session, agent.id, SESSION_TTL)
        resp = ok({"agent": agent.to_dict(), "token": token, "csrf_token": csrf.token_for(token)})
        resp.cookies[COOKIE] = token
        resp.cookies[COOKIE]["httponly"] = True
        resp.cookies[COOKIE]["samesite"] = "Strict"
        resp.cookies[COOKIE]["path"] = "/agent"
        resp.cookies[COOKIE]["max-age"] = SESSION_TTL
        if request_is_https(request):  # directly, or as our trusted TLS proxy says (X-Forwarded-Proto)
            resp.cookies[COOKIE]["secure"] = True
        return resp

    @bp.route("/api/logout", methods=["POST"])
    @requires_agent
    async def logout(request: Request, agent: Any) -> Any:
        svc = services(request)
        token, _ = session_token(request)
        await svc.run(svc.agents.revoke_session, token)
        resp = response.empty(status=204, headers=SECURITY_HEADERS)
        resp.cookies[COOKIE] = ""
        resp.cookies[COOKIE]["path"] = "/agent"
        resp.cookies[COOKIE]["max-age"] = 0
        resp.cookies[COOKIE]["httponly"] = True
        resp.cookies[COOKIE]["samesite"] = "Strict"
        if request_is_https(request):
            resp.cookies[COOKIE]["secure"] = True
        return resp

    @bp.route("/api/me", methods=["GET"])
    @requires_agent
    async def me(request: Request, agent: Any) -> Any:
        """The signed-in agent, and the session's CSRF token (a reloaded page gets it here)."""
        token, via_cookie = session_token(request)
        data: Dict[str, Any] = {"agent": agent.to_dict()}
        if via_cookie and token:
            data["csrf_token"] = csrf.token_for(token)
        return ok(data)

    # --------------------------------------------------------------- tickets
    @bp.route("/api/tickets", methods=["GET"])
    @requires_agent
    async def tickets(request: Request, agent: Any) -> Any:
        svc = services(request)
        raw = request.args.get("status", "waiting,assigned")
        statuses = [s for s in raw.split(",") if s]
        unknown = set(statuses) - {"waiting", "assigned", "returned_to_bot", "closed"}
        if unknown:
            return error(f"Unknown status: {', '.join(sorted(unknown))}", 400)
        found = await svc.run(svc.tickets.list_tickets, statuses)
        return ok({"tickets": [await ticket_json(svc, t) for t in found]})

    @bp.route("/api/tickets/<ticket_id:int>", methods=["GET"])
    @requires_agent
    async def ticket(request: Request, agent: Any, ticket_id: int) -> Any:
        svc = services(request)
        t = await svc.run(svc.tickets.get_ticket, ticket_id)
        messages = await svc.run(svc.tickets.messages, ticket_id)
        return ok(
            redact_value(
                {
                    "ticket": await ticket_json(svc, t),
                    "summary": t.summary or {},
                    "transcript": t.transcript or [],
                    "messages": [m.to_dict() for m in messages],
                },
                ROUTING_METADATA_KEYS,
            )
        )

    @bp.route("/api/tickets/<ticket_id:int>/claim", methods=["POST"])
    @requires_agent
    async def claim(request: Request, agent: Any, ticket_id: int) -> Any:
        svc = services(request)
        return ok({"ticket": await ticket_json(svc, await svc.handoff.claim(ticket_id, agent))})

    @bp.route("/api/tickets/<ticket_id:int>/messages", methods=["POST"])
    @requires_agent
    async def reply(request: Request, agent: Any, ticket_id: int) -> Any:
        text = text_field(body(request), "text")
        message = await services(request).handoff.reply(ticket_id, agent, text)
        return ok({"message": message.to_dict()}, status=201)

    @bp.route("/api/tickets/<ticket_id:int>/return", methods=["POST"])
    @requires_agent
    async def hand_back(request: Request, agent: Any, ticket_id: int) -> Any:
        note = text_field(body(request), "note", required=False)
        svc = services(request)
        return ok({"ticket": await ticket_json(svc, await svc.handoff.hand_back(ticket_id, agent, note))})

    @bp.route("/api/tickets/<ticket_id:int>/close", methods=["POST"])
    @requires_agent
    async def close(request: Request, agent: Any, ticket_id: int) -> Any:
        note = text_field(body(request), "note")
        svc = services(request)
        return ok({"ticket": await ticket_json(svc, await svc.handoff.close(ticket_id, agent, note))})

    @bp.route("/api/stats", methods=["GET"])
    @requires_agent
    async def stats(request: Request, agent: Any) -> Any:
        svc = services(request)
        return ok(await svc.run(svc.tickets.stats))

    @bp.route("/api/outages", methods=["GET"])
    @requires_agent
    async def outages(request: Request, agent: Any) -> Any:
        """Current and recent suspected bank outages, counts and a 24-hour timeline."""
        svc = services(request)
        return ok(await svc.run(svc.radar.status))

    # --------------------------------------------------------------- banks the directory lacks
    @bp.route("/api/unknown-banks", methods=["GET"])
    @requires_agent
    async def unknown_banks(request: Request, agent: Any) -> Any:
        """Bank names customers gave that data/banks.yml lacks, most frequent first (``?limit=``, 1 to 1000)."""
        raw = request.args.get("limit", "100")
        try:
            limit = int(raw)
        except ValueError:
            return error("'limit' must be a whole number.", 400)
        if not 1 <= limit <= 1000:
            return error("'limit' must be between 1 and 1000.", 400)
        svc = services(request)
        names = await svc.run(svc.unknown_banks.counts, limit)
        return ok({"unknown_banks": [n.to_dict() for n in names]})

    @bp.route("/api/unknown-banks/dismiss", methods=["POST"])
    @requires_agent
    async def dismiss_unknown_bank(request: Request, agent: Any) -> Any:
        """Forgets a name (once it is added to data/banks.yml); 404 if it is not in the list."""
        name = text_field(body(request), "name")
        svc = services(request)
        if not await svc.run(svc.unknown_banks.dismiss, name):
            return error("No such name in the list.", 404)
        logger.info("Agent %s dismissed an unknown bank name.", agent.username)
        return ok({"dismissed": name})

    # --------------------------------------------------------------- live updates (server-sent events)
    @bp.route("/api/events", methods=["GET"])
    @requires_agent
    async def events(request: Request, agent: Any) -> Any:
        """Server-sent events; the stream ends (``event: session_ended``) once the session is signed
        out, expired or the agent deactivated: re-checked before every batch of events and every
        ``CONSOLE_SESSION_CHECK_SECONDS``."""
        svc, rt = services(request), runtime(request)
        token, _ = session_token(request)
        start = request.headers.get("last-event-id") or request.args.get("after")
        try:
            cursor = int(start) if start not in (None, "") else await svc.run(svc.tickets.latest_event_id)
        except ValueError:
            return error("'after' must be an event id (an integer).", 400)
        if not rt.streams.acquire(agent.id):
            return too_busy(
                f"Too many live connections for this agent (at most {rt.streams.per_agent}): close another console tab.", 429, 5
            )
        loop = asyncio.get_running_loop()
        try:
            headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
            resp = await request.respond(content_type="text/event-stream; charset=utf-8", headers=headers)
            await resp.send("retry: 2000\n\n")
            idle, checked = 0.0, loop.time()
            while True:
                found = await svc.run(svc.tickets.events_after, cursor)
                if found or loop.time() - checked >= rt.session_check:
                    checked = loop.time()
                    if await svc.run(svc.agents.agent_for_session, token) is None:
                        await resp.send("event: session_ended\ndata: {}\n\n")
                        break
                for event in found:
                    cursor = event.id
                    payload = json.dumps(redact_value(event.to_dict(), ROUTING_METADATA_KEYS))
                    await resp.send(f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n")
                if found:
                    idle = 0.0
                else:
                    idle += SSE_POLL_SECONDS
                    if idle >= SSE_HEARTBEAT_SECONDS:
                        await resp.send(": keep-alive\n\n")  # also detects a gone client
                        idle = 0.0
                await asyncio.sleep(SSE_POLL_SECONDS)
            await resp.eof()
        finally:
            rt.streams.release(agent.id)
        return None

    @bp.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> Any:
        return error(str(exc), getattr(exc, "status_code", 400) or 400)

    return bp


__all__ = ["console_blueprint", "HandoffError"]
