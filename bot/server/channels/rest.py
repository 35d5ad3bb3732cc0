"""The REST channel (``POST /webhooks/rest/webhook``) with hand-off routing.

A conversation starts with ``POST /webhooks/rest/session``, which answers ``{"sender": "<id>"}``: a
server-issued, unguessable id (``bot.sessions``). The webhook and the polling endpoint accept only
such an id (else **403** ``{"error": ...}`` saying to start a session), so nobody can read or write a
conversation they did not start, nor one of another channel. A message is always of the REST
channel (a body's ``input_channel`` is ignored) and only allow-listed metadata is kept
(``inbound.CLIENT_METADATA``).

REST is request/response, so what arrives later (a specialist's messages, a back-online notice, a
"wait a day" reminder) is collected by polling ``GET /webhooks/rest/messages?sender=<id>&after=<last
message id>&after_notice=<last notice id>&after_reminder=<last reminder id>``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot import client_address, ratelimit, sessions
from bot.outages.reminders import REMINDER_BUTTONS
from bot.server.channels import inbound
from bot.server.channels.routing import HandoffRouter
from bot.server.request_guards import RequestGuards
from bot.server.services import Services

NOT_A_SESSION = (
    "Unknown or invalid 'sender': start a conversation with POST /webhooks/rest/session "
    "and send the 'sender' it returns with every message."
)


def _refused() -> Any:
    return response.json({"error": NOT_A_SESSION}, status=403)


class RestInput(RasaRestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def _extract_input_channel(self, request: Request) -> str:
        # Rasa takes the channel name from the body: a client could claim to be "slack" (a verified
        # source for the outage radar) or "socketio" (where pushes go). It is always this channel.
        return self.name()

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        """The client's metadata, with ``client_key`` (a pseudonym of the client address, set by
        the rate-limit middleware) put in by the server: a client cannot choose it."""
        body = request.json if isinstance(request.json, dict) else {}
        metadata = dict(body.get("metadata") or {})
        metadata.pop("client_key", None)
        key = getattr(request.ctx, "client_key", None)
        if key:
            metadata["client_key"] = key
        return metadata or None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        router = HandoffRouter(on_new_message)
        # the guards are built as the server starts: a misconfigured secret stops it then, not at the first message
        blueprint = RequestGuards.installer(router.attach(super().blueprint(router)))

        @blueprint.middleware("request")
        async def check_webhook_body(request: Request) -> Any:
            """Rejects malformed messages with a clear 4xx before Rasa reads them (it would 500)."""
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            try:
                payload = inbound.rest_payload(request.body or b"", request.content_type)
            except inbound.InboundError as exc:
                return response.json({"error": str(exc)}, status=exc.status)
            if not RequestGuards.of(request.app).session_ids.verify(payload["sender"], sessions.REST):
                return _refused()
            request.parsed_json = payload
            return None

        @blueprint.route("/session", methods=["POST"])
        async def new_session(request: Request) -> Any:
            """A new conversation: its server-issued sender id (a limited number per client address)."""
            address, guards = client_address.from_request(request), RequestGuards.of(request.app)
            decision = await guards.limiter.check("sessions_per_address", address or "unknown")
            if not decision.allowed:
                return response.json(ratelimit.too_many_body(decision), status=429, headers=ratelimit.too_many_headers(decision))
            return response.json(
                {"sender": guards.session_ids.issue(sessions.REST)}, status=201, headers={"Cache-Control": "no-store"}
            )

        @blueprint.middleware("request")
        async def rate_limit_webhook(request: Request) -> Any:
            """Over a per-client limit: 429 with Retry-After, and the message is not processed at all
            (nothing half-done: the client sends it again after the wait)."""
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            address = client_address.from_request(request)
            request.ctx.client_key = client_address.client_key(address)
            body = getattr(request, "parsed_json", None)
            sender = body.get("sender") if isinstance(body, dict) and isinstance(body.get("sender"), str) else None
            decision = await RequestGuards.of(request.app).limiter.check_all(ratelimit.chat_checks(sender, address))
            if not decision.allowed:
                return response.json(ratelimit.too_many_body(decision), status=429, headers=ratelimit.too_many_headers(decision))
            return None

        @blueprint.route("/messages", methods=["GET"])
        async def agent_messages(request: Request) -> Any:
            sender = request.args.get("sender")
            try:
                after = int(request.args.get("after", "0"))
                after_notice = int(request.args.get("after_notice", "0"))
                after_reminder = int(request.args.get("after_reminder", "0"))
            except ValueError:
                return response.json({"error": "'after', 'after_notice' and 'after_reminder' must be ids (integers)"}, status=400)
            if not sender:
                return response.json({"error": "'sender' is required"}, status=400)
            if not RequestGuards.of(request.app).session_ids.verify(sender, sessions.REST):
                return _refused()
            services = Services.of(request.app)
            if services is None:
                return response.json({"messages": [], "notices": [], "reminders": []})
            messages = await services.run(services.tickets.conversation_messages, sender, after, ("agent", "system"))
            notices = await services.run(services.notices.sent_to, sender, after_notice)
            reminders = await services.run(services.reminders.sent_to, sender, after_reminder)
            return response.json(
                {
                    "messages": [m.to_dict() for m in messages],
                    "notices": [{"id": n.id, "bank": n.bank, "outcome": n.outcome, "text": n.text} for n in notices],
                    # "wait a day" check-backs: the text asks whether the feed works; answer with the buttons
                    "reminders": [{"id": r.id, "text": r.text, "buttons": REMINDER_BUTTONS} for r in reminders],
                }
            )

        return blueprint
