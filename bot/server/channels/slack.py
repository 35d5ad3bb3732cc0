"""The Slack channel (``POST /webhooks/slack/webhook``) with hand-off routing.

Rasa's ``SlackInput`` with what a production Slack app needs and Rasa 3.6.21 does not do (read in
``rasa/core/channels/slack.py``):

* **signatures**: every request must carry a valid ``X-Slack-Signature`` for its raw body and an
  ``X-Slack-Request-Timestamp`` within 5 minutes of now (either direction); anything else is answered
  401 before the body is even parsed. Rasa's check answers 400 and accepts lax timestamps
  (``int(" +1_700_000_000 ")``); ours takes ASCII digits only and compares in constant time.
* **retries**: Rasa ignores a retry only when its reason is ``http_timeout`` (other reasons are
  answered a second time), so a first delivery lost while the server restarted was never answered.
  Here every delivery (a message: channel + ``ts``, which a retry and the ``message`` / ``app_mention``
  twin share; a button click) is claimed in the product database before it is handled
  (bot/handoff/seen_events.py): a retry of a delivery that was answered, or is being answered, is
  dropped; one whose handling never finished (the process died: the claim is older than
  ``SLACK_EVENT_CLAIM_SECONDS``, default 45) or could not answer (the action server was down) is
  answered now. Several replicas sharing the database answer each delivery once. Without the
  database, this process remembers what it saw (as before).
* **3 seconds**: the request is answered as soon as it is verified and parsed; the bot (NLU, actions,
  the bank-site check) runs in a background task, as Rasa's own ``process_message`` does.
* **content types**: Rasa compares the whole ``Content-Type`` header, so
  ``application/json; charset=utf-8`` is silently dropped with a 200. We compare the media type only.
* **malformed requests** get a 4xx (400 bad JSON / missing fields, 415 other content types), never
  Rasa's 500s (a non-object JSON body, a form without ``payload``, an unsupported interaction).
* **conversations**: ``conversation_granularity: thread`` (the default here) makes each thread of the
  support channel its own conversation, and the bot answers in that thread. A direct message is one
  conversation per user and DM (Rasa would make every top-level DM message a new "thread"
  conversation, since its thread id falls back to the message's own ``ts``).
* **buttons** render as Block Kit ``actions`` blocks of up to 25 buttons (Rasa drops *all* buttons
  when a message has more than 5, e.g. our "which of these is closest?" question); a click reaches
  the bot as the button's payload, and the clicked message's buttons are replaced by the choice.
* **Web API base URL** (``slack_api_url``, env ``SLACK_API_URL``) is used by every client the channel
  makes, so tests and proxies can stand in for ``https://slack.com/api/``.
* **conversation ids** are namespaced: ``slack-<user>_<channel>[_<thread>]`` (``slack-<user>`` with
  ``conversation_granularity: sender``), so no id of another channel can name a Slack conversation.
* **hand-off**: after a request's signature is verified, where its conversation is answered (channel
  and thread) is stored server-side (``bot.handoff.conversation_refs``); ``push_to_conversation``
  posts a specialist's messages (and back-online notices) there, never where a tracker's metadata says.
* **shared files** (``file_share``): each file (up to 3 per message) is checked by the manual upload
  assistant. Its declared ``size`` is checked against ``max_file_bytes`` (default: the assistant's
  limit) before anything is fetched, and the download is capped while streaming. It is fetched from
  ``url_private_download`` with the bot token only when that URL is on ``files.slack.com`` (https) or on
  the ``slack_api_url`` host; redirects are not followed. The download goes through the outbound policy
  (``bot/outbound.py``, settings ``outbound.slack`` in bankfeed.yml): public addresses on ports 80/443
  only, resolved once and connected to as checked, no proxy. The report is posted in the DM / thread and
  the converted CSV(s) uploaded there with ``files_upload_v2`` (scopes ``files:read``, ``files:write``).
  When the dates could be either order, the question comes with two buttons; the file is kept in memory
  for 15 minutes for the answer. While a specialist holds the conversation, files are not checked: the
  message (or "(shared a file: ...)") goes to the specialist. File names, contents and message text
  are never logged.

Configuration (credentials.yml, each key falling back to an environment variable): ``slack_token``
(``SLACK_BOT_TOKEN``), ``slack_signing_secret`` (``SLACK_SIGNING_SECRET``), ``slack_api_url``
(``SLACK_API_URL``), ``slack_channel`` (``SLACK_SUPPORT_CHANNEL``: the support channel's id, whose
messages are answered without a mention), ``conversation_granularity`` (``thread``), ``proxy``.
Without a token and signing secret the channel stays mounted but answers 503: the server still starts.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, Hashable, Iterable, List, Optional, Set, Text, Tuple
from urllib.parse import parse_qs, urlparse, urlsplit

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.slack import SlackBot as RasaSlackBot
from rasa.core.channels.slack import SlackInput as RasaSlackInput
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused
from bot.server.channels.routing import NO_ANSWER, HandoffRouter, RecordingOutput
from bot.handoff.seen_events import ALREADY_DONE, HANDLE, SeenEvents, claim_seconds_from_env
from bot.outbound import OutboundClient, OutboundPolicy, OutboundRefused

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
#: Where Slack serves ``url_private_download``; the bot token is sent there and to the API host only.
SLACK_FILES_HOST = "files.slack.com"
SIGNATURE_MAX_AGE = 5 * 60  # seconds either side of now, as Slack recommends
CONVERSATION_PREFIX = "slack-"
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
RETRY_REASON_HEADER = "X-Slack-Retry-Reason"
GRANULARITIES = ("sender", "channel", "thread")

# Block Kit limits
MAX_BUTTONS_PER_BLOCK = 25
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_MESSAGE_TEXT = 39_000

# message subtypes that are still a person writing to us; every other subtype (edits, deletions,
# joins, bot messages, ...) is not a user message
USER_SUBTYPES = {None, "thread_broadcast", "file_share"}
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def verify_signature(
    secret: str, timestamp: Optional[str], signature: Optional[str], body: bytes, now: Optional[float] = None
) -> bool:
    """Slack's v0 request signature: ``v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<raw body>"))``.

    False for a missing secret, header or signature, a timestamp that is not plain digits or is more
    than 5 minutes away from ``now`` (a replay, or a clock far off), or a signature that differs.
    """
    if not secret or not timestamp or not signature:
        return False
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > SIGNATURE_MAX_AGE:
        return False
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + timestamp.encode("ascii") + b":" + (body or b""), hashlib.sha256)
    expected = ("v0=" + digest.hexdigest()).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def escape(text: str) -> str:
    """Slack's three control characters in message text (``<`` starts links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Seen:
    """Keys seen in the last ``ttl`` seconds (bounded), to drop duplicate deliveries."""

    def __init__(self, ttl: float = 15 * 60, size: int = 20_000):
        self.ttl, self.size = ttl, size
        self._keys: "OrderedDict[Hashable, float]" = OrderedDict()

    def check_and_add(self, keys: Iterable[Hashable]) -> bool:
        """True if any of ``keys`` was seen already; records them all either way."""
        now = time.monotonic()
        while self._keys:
            oldest, at = next(iter(self._keys.items()))
            if now - at <= self.ttl and len(self._keys) <= self.size:
                break
            self._keys.popitem(last=False)
        keys = list(keys)
        seen = any(k in self._keys for k in keys)
        for k in keys:
            self._keys[k] = now
            self._keys.move_to_end(k)
        return seen


@dataclass(frozen=True)
class Claim:
    """What identifies one delivery: the message (channel + ts: a retry and the app_mention twin
    share it) or the click; Slack's ``event_id`` is kept with it."""

    key: str
    event_id: Optional[str] = None


class AnswerWatch(RecordingOutput):
    """The bot's output for one message, noting whether all it could say was an apology: the hand-off
    router's ``NO_ANSWER``, or Rasa's ``utter_default`` ("say that again", when an action failed, e.g.
    the action server was down). Nothing at all (a specialist holds the chat) is not an apology."""

    APOLOGIES = ("utter_default",)
    answers = 0
    apologies = 0

    @property
    def no_answer(self) -> bool:
        return self.apologies > 0 and self.answers == 0

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        if message.get("utter_action") in self.APOLOGIES:
            self.apologies += 1
        else:
            self.answers += 1
        await super().send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        if text == NO_ANSWER:
            self.apologies += 1
        else:
            self.answers += 1
        await super().send_text_message(recipient_id, text, **kwargs)


class SlackBot(RasaSlackBot):
    """Rasa's Slack output with our Web API base URL, Block Kit buttons and no legacy ``as_user``.

    Failures of the Web API are logged and swallowed while the bot answers (an exception here would
    abort the turn and lose the tracker update); ``raise_errors=True`` (hand-off pushes) re-raises.
    """

    def __init__(
        self,
        token: Text,
        slack_channel: Optional[Text] = None,
        thread_id: Optional[Text] = None,
        proxy: Optional[Text] = None,
        api_url: Text = DEFAULT_API_URL,
        raise_errors: bool = False,
    ) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        self.client = make_client(token, api_url, proxy)
        self.raise_errors = raise_errors

    async def _post_message(self, channel: Text, **kwargs: Any) -> None:
        kwargs.pop("as_user", None)  # legacy; refused or ignored for apps with granular bot scopes
        kwargs.pop("type", None)  # not a chat.postMessage argument
        if self.thread_id:
            kwargs["thread_ts"] = self.thread_id
        try:
            await self.client.chat_postMessage(channel=channel, **kwargs)
        except Exception:
            if self.raise_errors:
                raise
            logger.exception("Slack chat.postMessage to %s failed; the message is only in the tracker.", channel)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._post_message(
            channel=self.slack_channel or recipient_id, text=_truncate(escape(text.strip()), MAX_MESSAGE_TEXT)
        )

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        recipient = self.slack_channel or recipient_id
        usable = [b for b in buttons if b.get("payload") and b.get("title")]
        if not usable:
            return await self.send_text_message(recipient, text)
        await self._post_message(
            channel=recipient, text=_truncate(escape(text.strip()), MAX_MESSAGE_TEXT), blocks=button_blocks(text, usable)
        )

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        message = dict(json_message)
        channel = message.pop("channel", None) or self.slack_channel or recipient_id
        await self._post_message(channel=channel, **message)


def button_blocks(text: str, buttons: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A section with the text, then ``actions`` blocks of at most 25 buttons each."""
    blocks: List[Dict[str, Any]] = [
        {"type": "section", "text": {"type": "plain_text", "text": _truncate(text.strip() or " ", MAX_SECTION_TEXT)}}
    ]
    for start in range(0, min(len(buttons), MAX_BUTTONS_PER_BLOCK * (MAX_BLOCKS - 1)), MAX_BUTTONS_PER_BLOCK):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"rasa_button_{start + i}",
                        "text": {"type": "plain_text", "text": _truncate(str(b["title"]), MAX_BUTTON_TEXT)},
                        "value": str(b["payload"])[:MAX_BUTTON_VALUE],
                    }
                    for i, b in enumerate(buttons[start : start + MAX_BUTTONS_PER_BLOCK])
                ],
            }
        )
    return blocks


def make_client(token: Optional[str], api_url: str, proxy: Optional[str] = None) -> AsyncWebClient:
    """Every Web API client of the channel: our base URL, one retry when Slack rate-limits."""
    client = AsyncWebClient(token=token, base_url=api_url, proxy=proxy, timeout=15)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    return client


class SlackInput(RasaSlackInput):
    """Slack Events API + interactivity on ``/webhooks/slack/webhook``, hand-off routing in front."""

    @classmethod
    def name(cls) -> Text:
        return "slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "SlackInput":
        credentials = credentials or {}

        def setting(key: str, env: Optional[str], default: Any = None) -> Any:
            value = credentials.get(key)
            if value is None or value == "":
                value = (os.environ.get(env) if env else None) or default
            return value

        return cls(
            slack_token=setting("slack_token", "SLACK_BOT_TOKEN"),
            slack_channel=setting("slack_channel", "SLACK_SUPPORT_CHANNEL"),
            proxy=setting("proxy", None),
            slack_signing_secret=setting("slack_signing_secret", "SLACK_SIGNING_SECRET", ""),
            conversation_granularity=setting("conversation_granularity", None, "thread"),
            slack_api_url=setting("slack_api_url", "SLACK_API_URL", DEFAULT_API_URL),
            max_file_bytes=setting("max_file_bytes", "BANKFEED_UPLOAD_MAX_BYTES"),
        )

    def __init__(
        self,
        slack_token: Optional[Text] = None,
        slack_channel: Optional[Text] = None,
        proxy: Optional[Text] = None,
        slack_signing_secret: Text = "",
        conversation_granularity: Text = "thread",
        slack_api_url: Text = DEFAULT_API_URL,
        max_file_bytes: Any = None,
        **_ignored: Any,
    ) -> None:
        if conversation_granularity not in GRANULARITIES:
            raise InvalidConfigException(
                f"Slack 'conversation_granularity' must be one of {', '.join(GRANULARITIES)}, "
                f"not {conversation_granularity!r}."
            )
        parsed = urlparse(str(slack_api_url or ""))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidConfigException(f"Slack 'slack_api_url' must be an http(s) URL, not {slack_api_url!r}.")
        self.slack_api_url = str(slack_api_url) if str(slack_api_url).endswith("/") else f"{slack_api_url}/"
        super().__init__(
            slack_token,
            slack_channel,
            proxy,
            slack_retry_reason_header=RETRY_REASON_HEADER,
            slack_retry_number_header=RETRY_NUM_HEADER,
            use_threads=True,  # where a reply goes is decided per message, see _message_metadata
            slack_signing_secret=slack_signing_secret or "",
            conversation_granularity=conversation_granularity,
        )
        self._seen = _Seen()  # only while the product database is unreachable: see _once
        self._claims: Optional[SeenEvents] = None
        self._background_tasks: Set[asyncio.Task] = set()
        self.max_file_bytes = file_replies.max_file_bytes(max_file_bytes)
        self._pending_files = file_replies.PendingFiles()

    # ------------------------------------------------------------------ configuration
    @property
    def configured(self) -> bool:
        return bool(self.slack_token and self.slack_signing_secret)

    def _validate_credentials(self) -> None:
        """Rasa refuses to start without a signing secret; we start and answer 503 instead."""
        missing = [
            name
            for name, value in (
                ("slack_token (env SLACK_BOT_TOKEN)", self.slack_token),
                ("slack_signing_secret (env SLACK_SIGNING_SECRET)", self.slack_signing_secret),
            )
            if not value
        ]
        if missing:
            logger.warning(
                "The Slack channel is not configured (missing %s): /webhooks/slack/webhook answers 503 "
                "and nothing is posted to Slack until it is.",
                " and ".join(missing),
            )

    def get_output_channel(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> SlackBot:
        return SlackBot(self.slack_token, channel or self.slack_channel, thread_id, self.proxy, self.slack_api_url)

    # ------------------------------------------------------------------ HTTP
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        router = HandoffRouter(on_new_message)
        slack_webhook = Blueprint("slack_webhook", __name__)

        @slack_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.configured else "not configured"})

        @slack_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                return await self._handle(request, router)
            except BadRequest as e:
                return response.json({"error": str(e)}, status=e.status)

        return router.attach(slack_webhook)

    async def _handle(self, request: Request, router: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        if not self.configured:
            return response.json({"error": "The Slack channel is not configured on this server."}, status=503)
        if not self.is_request_from_slack_authentic(request):
            return response.json(
                {"error": "Missing, invalid or expired X-Slack-Signature / X-Slack-Request-Timestamp."}, status=401
            )
        retry = request.headers.get(RETRY_NUM_HEADER)
        if retry:
            # handled like a first delivery: the event's claim (bot/handoff/seen_events.py) decides
            # whether it was answered already, is being answered, or was lost and is answered now
            logger.info("Slack retry #%s (%s).", retry, request.headers.get(RETRY_REASON_HEADER, "no reason"))

        kind, body = self._parse_body(request)
        if kind == "event":
            return self._handle_event(body, router)
        return self._handle_interaction(body, router)

    def is_request_from_slack_authentic(self, request: Request) -> bool:
        return verify_signature(
            self.slack_signing_secret,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
            request.body or b"",
        )

    @staticmethod
    def _parse_body(request: Request) -> Tuple[str, Dict[str, Any]]:
        """("event", Events API JSON) or ("interaction", the form's ``payload`` JSON); BadRequest otherwise."""
        media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type == "application/json":
            try:
                data = json.loads(request.body or b"")
            except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, absurd nesting
                raise BadRequest("The body is not valid JSON.")
            if not isinstance(data, dict):
                raise BadRequest("The body must be a JSON object.")
            return "event", data
        if media_type == "application/x-www-form-urlencoded":
            try:
                form = parse_qs((request.body or b"").decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("The form body is not valid UTF-8.")
            raw = form.get("payload")
            if not raw:
                raise BadRequest("The form has no 'payload' field.")
            try:
                payload = json.loads(raw[0])
            except (ValueError, RecursionError):
                raise BadRequest("The 'payload' field is not valid JSON.")
            if not isinstance(payload, dict):
                raise BadRequest("The 'payload' field must be a JSON object.")
            return "interaction", payload
        raise BadRequest(
            "Content-Type must be application/json or application/x-www-form-urlencoded.",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        )

    # ------------------------------------------------------------------ Events API
    def _handle_event(self, body: Dict[str, Any], router: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        kind = body.get("type")
        if kind == "url_verification" or (kind is None and "challenge" in body):
            challenge = body.get("challenge")
            if not isinstance(challenge, str) or not challenge:
                raise BadRequest("'challenge' must be a non-empty string.")
            return response.json({"challenge": challenge})
        if kind != "event_callback":
            return response.text("")  # app_rate_limited and other notices: nothing to do

        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise BadRequest("An event_callback needs an 'event' object with a 'type'.")
        bot_users = self._bot_users(body)
        subtype = event.get("subtype")
        if (
            not self._is_user_message(body)
            or not (subtype is None or (isinstance(subtype, str) and subtype in USER_SUBTYPES))
            or event.get("hidden")
            or event.get("user") in bot_users
        ):
            return response.text("")  # bot messages (ours included), edits, joins, reactions, ...
        user, channel, text, ts = event.get("user"), event.get("channel"), event.get("text"), event.get("ts")
        files = self._shared_files(event)
        if files and text is None:
            text = ""  # a file shared without a comment
        for field, value in (("user", user), ("channel", channel), ("text", text), ("ts", ts)):
            if not isinstance(value, str) or (not value and not (field == "text" and files)):
                raise BadRequest(f"The message event has no '{field}'.")
        thread_ts = event.get("thread_ts")
        if thread_ts is not None and not isinstance(thread_ts, str):
            raise BadRequest("'thread_ts' must be a string.")

        metadata = self._message_metadata(channel, event.get("channel_type"), thread_ts, ts, bot_users)
        if not self._is_supported_channel(body, metadata):
            logger.debug("Ignoring a Slack message in channel %s (not the support channel, no mention).", channel)
            return response.text("")
        # Slack delivers a mention in the support channel twice (message + app_mention), and may
        # deliver an event again: answer each message once.
        team = body.get("team_id") if isinstance(body.get("team_id"), str) else ""
        claim = Claim(f"slack:message:{team}:{channel}:{ts}", body.get("event_id") if isinstance(body.get("event_id"), str) else None)

        text = self._sanitize_user_message(text, bot_users) if text else ""
        if files:
            self._spawn(self._once(router, claim, lambda: self._handle_files(
                router, files, text, self._conversation(user, metadata), metadata)))
            return response.text("")
        if not text:
            return response.text("")  # a bare mention
        self._dispatch(router, text, self._conversation(user, metadata), metadata, claim)
        return response.text("")

    @staticmethod
    def _bot_users(body: Dict[str, Any]) -> List[str]:
        """The bot's own user id(s) in this workspace, to drop self-mentions and own messages."""
        users: List[str] = []
        authorizations = body.get("authorizations")
        if isinstance(authorizations, list):
            users += [a.get("user_id") for a in authorizations if isinstance(a, dict) and isinstance(a.get("user_id"), str)]
        authed = body.get("authed_users")
        if isinstance(authed, list):
            users += [u for u in authed if isinstance(u, str)]
        return users

    @staticmethod
    def _is_dm(channel: str, channel_type: Optional[str] = None) -> bool:
        return channel_type == "im" or (channel_type is None and channel.startswith("D"))

    def _message_metadata(
        self, channel: str, channel_type: Optional[str], thread_ts: Optional[str], ts: Optional[str], users: List[str]
    ) -> Dict[str, Any]:
        """Where the answer goes (stored with the user message; the hand-off pushes there too).

        In a DM the bot answers in the DM, or in the thread the user wrote in. In a channel it
        always answers in the message's thread (starting one under a top-level message)."""
        is_dm = self._is_dm(channel, channel_type)
        reply_thread = thread_ts if is_dm else (thread_ts or ts)
        return {
            "out_channel": channel,
            "thread_id": reply_thread,
            "users": users,
            "slack": {"is_dm": is_dm, "ts": ts},
        }

    def _conversation(self, user: str, metadata: Dict[str, Any]) -> str:
        channel, thread = metadata["out_channel"], metadata.get("thread_id")
        if self.conversation_granularity == "sender":
            return f"{CONVERSATION_PREFIX}{user}"
        if self.conversation_granularity == "channel" or metadata["slack"]["is_dm"] or not thread:
            return f"{CONVERSATION_PREFIX}{user}_{channel}"
        return f"{CONVERSATION_PREFIX}{user}_{channel}_{thread}"

    @staticmethod
    def _reference(metadata: Dict[str, Any]) -> Dict[str, Any]:
        """Where a verified message's conversation is answered (stored for later pushes)."""
        return {"out_channel": metadata["out_channel"], "thread_id": metadata.get("thread_id")}

    def get_metadata(self, request: Request) -> Dict[Text, Any]:
        """Rasa's hook, for any caller: where a request's answer goes ({} when it has none)."""
        try:
            kind, body = self._parse_body(request)
        except BadRequest:
            return {}
        if kind == "event":
            event = body.get("event") if isinstance(body.get("event"), dict) else {}
            channel = event.get("channel")
            if not isinstance(channel, str):
                return {}
            return self._message_metadata(
                channel, event.get("channel_type"), event.get("thread_ts"), event.get("ts"), self._bot_users(body)
            )
        location = self._interaction_location(body)
        return self._interaction_metadata(body, *location) if location else {}

    # ------------------------------------------------------------------ interactivity (button clicks)
    def _handle_interaction(self, payload: Dict[str, Any], router: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        if payload.get("type") not in ("block_actions", "interactive_message"):
            return response.text("")  # shortcuts, modals: not used by this app
        user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
        actions = payload.get("actions")
        if not isinstance(user.get("id"), str) or not user.get("id"):
            raise BadRequest("The interaction has no 'user.id'.")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise BadRequest("The interaction has no 'actions'.")
        if not isinstance(actions[0].get("type"), str) or not self._is_interactive_message(payload):
            return response.text("")
        try:
            text = self._get_interactive_response(actions[0])
        except (AttributeError, IndexError, KeyError, TypeError):
            raise BadRequest("The interaction's action is malformed.")
        if text is None or not isinstance(text, str):
            return response.text("")  # a link button: nothing for the bot
        location = self._interaction_location(payload)
        if location is None:
            raise BadRequest("The interaction has no 'channel.id'.")
        action_ts = actions[0].get("action_ts")
        claim = Claim(f"slack:action:{user['id']}:{action_ts}") if isinstance(action_ts, str) and action_ts else None
        metadata = self._interaction_metadata(payload, *location)
        order = file_replies.parse_date_order_payload(text)
        if order:  # one of our "which date order?" buttons: re-check the kept file, not a bot turn
            self._spawn(self._once(router, claim, lambda: self._recheck_with_date_order(
                order, self._conversation(user["id"], metadata), metadata)))
        else:
            self._dispatch(router, text.strip(), self._conversation(user["id"], metadata), metadata, claim)
        message = payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("ts"), str):
            self._spawn(self._show_choice(location[0], message, actions[0], user["id"]))
        return response.text("")

    @staticmethod
    def _interaction_location(payload: Dict[str, Any]) -> Optional[Tuple[str, Optional[str], Optional[str]]]:
        """(channel, thread_ts, message ts) of the clicked message."""
        channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
        container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        channel_id = channel.get("id") or container.get("channel_id")
        if not isinstance(channel_id, str) or not channel_id:
            return None
        thread_ts = message.get("thread_ts") or container.get("thread_ts")
        ts = message.get("ts") or container.get("message_ts")
        return (
            channel_id,
            thread_ts if isinstance(thread_ts, str) else None,
            ts if isinstance(ts, str) else None,
        )

    def _interaction_metadata(
        self, payload: Dict[str, Any], channel: str, thread_ts: Optional[str], ts: Optional[str]
    ) -> Dict[str, Any]:
        is_dm = self._is_dm(channel)
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        bot_users = [message["user"]] if isinstance(message.get("user"), str) and message.get("bot_id") else []
        return {
            "out_channel": channel,
            "thread_id": thread_ts if is_dm else (thread_ts or ts),
            "users": bot_users,
            "slack": {"is_dm": is_dm, "ts": ts, "interaction": True},
        }

    async def _show_choice(self, channel: str, message: Dict[str, Any], action: Dict[str, Any], user: str) -> None:
        """Replaces the clicked message's buttons by what was chosen (so it is not clicked twice)."""
        blocks = message.get("blocks")
        if not isinstance(blocks, list) or not message.get("bot_id"):
            return
        title = (action.get("text") or {}).get("text") if isinstance(action.get("text"), dict) else None
        chosen = str(title or action.get("value") or "")
        kept = [b for b in blocks if isinstance(b, dict) and b.get("type") != "actions"]
        kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<@{user}> chose *{escape(chosen)}*"}]})
        await make_client(self.slack_token, self.slack_api_url, self.proxy).chat_update(
            channel=channel, ts=message["ts"], text=message.get("text") or chosen, blocks=kept
        )

    # ------------------------------------------------------------------ shared files (manual upload assistant)
    @classmethod
    def _is_user_message(cls, slack_event: Dict[Text, Any]) -> bool:
        """Rasa's check (a message or mention with text, not from a bot), plus files shared without text."""
        event = slack_event.get("event")
        if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention") or event.get("bot_id"):
            return False
        return bool(event.get("text")) or bool(cls._shared_files(event))

    @staticmethod
    def _shared_files(event: Dict[str, Any]) -> List[Dict[str, Any]]:
        """The file objects of a ``file_share`` message (or any message carrying ``files``)."""
        files = event.get("files")
        if not isinstance(files, list):
            return []
        return [f for f in files if isinstance(f, dict)]

    def _may_send_token_to(self, url: str) -> bool:
        """The bot token goes to Slack's file host (https) and to our configured API host only, and only
        where the outbound policy lets a request go (checked again, after resolving, when fetching)."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
            self._outbound_policy().check_url(url)
        except (ValueError, OutboundRefused):
            return False
        if parts.username or parts.password or not host:
            return False
        if parts.scheme == "https" and host == SLACK_FILES_HOST and port in (None, 443):
            return True
        return file_replies.same_origin(url, self.slack_api_url)

    def _outbound_policy(self) -> OutboundPolicy:
        """bankfeed.yml's ``outbound.slack`` policy (read once per channel), with the download's limits."""
        policy = self.__dict__.get("_outbound")
        if policy is None:
            from bot.settings import outbound_policy

            policy = self._outbound = outbound_policy("slack").replace(
                max_bytes=self.max_file_bytes, read_timeout=file_replies.DOWNLOAD_TIMEOUT,
                total_timeout=file_replies.DOWNLOAD_TIMEOUT)
        return policy

    async def _download(self, url: str) -> bytes:
        if not isinstance(url, str) or not self._may_send_token_to(url):
            logger.warning("Not downloading a shared Slack file from an unexpected host.")
            raise FileRefused(file_replies.UNREACHABLE)
        try:
            with file_replies.quiet_download():
                return await self._fetch(url)
        except FileRefused:
            raise
        except Exception as error:
            logger.warning("Downloading a shared Slack file failed: %s.", type(error).__name__)
            raise FileRefused(file_replies.UNREACHABLE)

    async def _fetch(self, url: str) -> bytes:
        # no proxy: the outbound policy connects to the address it checked (a proxy would resolve the name)
        async with OutboundClient(self._outbound_policy(), use="slack") as client:

            async def download() -> bytes:
                async with client.stream("GET", url, headers={"Authorization": f"Bearer {self.slack_token}"},
                                         follow_redirects=False) as streamed:
                    r = streamed.response
                    if r.status_code != 200:
                        # a redirect is not followed: it would leave the hosts the token may go to
                        logger.warning("Downloading a shared Slack file failed: HTTP %s.", r.status_code)
                        raise FileRefused(file_replies.UNREACHABLE)
                    return await file_replies.read_capped(r, self.max_file_bytes)

            return await asyncio.wait_for(download(), timeout=file_replies.DOWNLOAD_TIMEOUT)

    async def _handle_files(self, router: Callable[[UserMessage], Awaitable[Any]], files: List[Dict[str, Any]],
                            text: str, conversation_id: str, metadata: Dict[str, Any]) -> None:
        """Checks each shared file and answers in the DM / thread; while a specialist holds the
        conversation the message goes to them instead (files are not checked)."""
        names = [str(f.get("name") or f.get("title") or "file") for f in files]
        await self._remember(router, conversation_id, metadata)
        if await file_replies.handed_off(router, conversation_id):
            self._dispatch(router, text or file_replies.shared_note(names), conversation_id, metadata)
            return
        output = self.get_output_channel(metadata["out_channel"], metadata.get("thread_id"))
        for shared in files[: file_replies.MAX_FILES_PER_MESSAGE]:
            try:
                await self._answer_file(shared, output, conversation_id, metadata)
            except Exception:
                logger.exception("Checking a shared Slack file failed.")
                await output.send_text_message(metadata["out_channel"], file_replies.UNREACHABLE)
        if len(files) > file_replies.MAX_FILES_PER_MESSAGE:
            await output.send_text_message(
                metadata["out_channel"], file_replies.more_files_text(len(files) - file_replies.MAX_FILES_PER_MESSAGE))

    async def _answer_file(self, shared: Dict[str, Any], output: "SlackBot", conversation_id: str,
                           metadata: Dict[str, Any]) -> None:
        channel = metadata["out_channel"]
        name = str(shared.get("name") or shared.get("title") or "upload")
        url = shared.get("url_private_download") or shared.get("url_private")
        size = shared.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size > self.max_file_bytes:
            await output.send_text_message(channel, file_replies.too_large_text(self.max_file_bytes, size))
            return
        if shared.get("mode") in ("external", "tombstone", "hidden_by_limit") or not isinstance(url, str):
            await output.send_text_message(channel, file_replies.NOT_A_FILE)
            return
        try:
            data = await self._download(url)
        except FileRefused as refused:
            await output.send_text_message(channel, str(refused))
            return
        await self._reply_with_check(data, name, None, output, conversation_id, metadata)

    async def _reply_with_check(self, data: bytes, name: str, order: Optional[str], output: "SlackBot",
                                conversation_id: str, metadata: Dict[str, Any]) -> None:
        channel, thread = metadata["out_channel"], metadata.get("thread_id")
        reply = await file_replies.check_file(data, name, date_order=order)
        if reply.buttons:
            self._pending_files.put(conversation_id, name, data)
            await output.send_text_with_buttons(channel, reply.text, reply.buttons)
            return
        await output.send_text_message(channel, reply.text)
        if reply.converted:
            await self._upload_converted(reply.converted, channel, thread, output)

    async def _upload_converted(self, converted: List[Any], channel: str, thread: Optional[str],
                                output: "SlackBot") -> None:
        """The converted CSV(s) back into the same DM / thread (``files_upload_v2``: scope files:write)."""
        client = make_client(self.slack_token, self.slack_api_url, self.proxy)
        try:
            await client.files_upload_v2(
                file_uploads=[{"content": c.content, "filename": c.filename, "title": c.filename}
                              for c in converted],
                channel=channel,
                thread_ts=thread,
            )
        except Exception as error:
            logger.error("Uploading a converted file to Slack failed: %s.", type(error).__name__)
            await output.send_text_message(
                channel, "I couldn't attach the converted file here. You can convert it on our website's upload page.")

    async def _recheck_with_date_order(self, order: str, conversation_id: str, metadata: Dict[str, Any]) -> None:
        output = self.get_output_channel(metadata["out_channel"], metadata.get("thread_id"))
        pending = self._pending_files.take(conversation_id)
        if pending is None:
            await output.send_text_message(metadata["out_channel"], file_replies.EXPIRED)
            return
        name, data, _ = pending
        try:
            await self._reply_with_check(data, name, order, output, conversation_id, metadata)
        except Exception:
            logger.exception("Re-checking a shared Slack file failed.")
            await output.send_text_message(metadata["out_channel"], file_replies.UNREACHABLE)

    # ------------------------------------------------------------------ to the bot, in the background
    def _dispatch(
        self, router: Callable[[UserMessage], Awaitable[Any]], text: str, conversation_id: str, metadata: Dict[str, Any],
        claim: Optional["Claim"] = None,
    ) -> None:
        output = AnswerWatch(self.get_output_channel(metadata["out_channel"], metadata.get("thread_id")))
        message = UserMessage(text, output, conversation_id, input_channel=self.name(), metadata=metadata)

        async def remember_then_route() -> None:
            await self._remember(router, conversation_id, metadata)
            await router(message)

        self._spawn(self._once(router, claim, remember_then_route, output))

    async def _remember(self, router: Any, conversation_id: str, metadata: Dict[str, Any]) -> None:
        """Stores the conversation's place; only ever called for a request whose signature was verified."""
        remember = getattr(router, "remember", None)
        if remember is not None:
            await remember(conversation_id, self.name(), self._reference(metadata))

    # ------------------------------------------------------------------ each delivery once (retries)
    def _seen_events(self, router: Any) -> Optional[SeenEvents]:
        """The product database's claims (shared by every replica), or None without a database."""
        store = getattr(getattr(router, "services", None), "database", None)
        if store is None:
            return None
        if self._claims is None or self._claims.db is not store:
            self._claims = SeenEvents(store, claim_seconds_from_env())
        return self._claims

    async def _once(self, router: Any, claim: Optional["Claim"], handle: Callable[[], Awaitable[Any]],
                    watch: Optional["AnswerWatch"] = None) -> None:
        """Handles a delivery unless it was (or is being) handled already. Marked done once the bot
        answered; released when it could not answer (the action server down: the user was told to
        send it again) or the handling failed, so a retry of it is handled."""
        if claim is None:
            await handle()
            return
        claims = self._seen_events(router)
        if claims is None:
            if not self._seen.check_and_add([claim.key]):  # no database: this process remembers
                await handle()
            return
        try:
            outcome = await asyncio.to_thread(claims.claim, claim.key, claim.event_id)
        except Exception:
            logger.exception("Could not claim a Slack event in the product database; remembering it in this process.")
            outcome = HANDLE if not self._seen.check_and_add([claim.key]) else ALREADY_DONE
            claims = None
        if outcome != HANDLE:
            logger.info("Dropping a repeated Slack delivery (%s).", outcome)
            return
        answered = False
        try:
            await handle()
            answered = watch is None or not watch.no_answer
        finally:
            if claims is not None:
                try:
                    await asyncio.to_thread(claims.finish if answered else claims.release, claim.key)
                except Exception:
                    logger.exception("Could not record the outcome of a Slack event.")

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        """Runs after the response is sent (Slack wants its 200 within 3 s); errors are logged."""
        task = asyncio.ensure_future(coroutine)
        self._background_tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._background_tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("Handling a Slack message failed.", exc_info=t.exception())

        task.add_done_callback(done)

    # ------------------------------------------------------------------ hand-off pushes
    async def push_to_conversation(
        self, conversation_id: str, reference: Optional[Dict[str, Any]], text: str, buttons: Optional[List[Dict[str, Any]]]
    ) -> None:
        """Posts a specialist's message (or a join/leave notice) to the conversation's DM or thread.

        ``reference`` is the place stored from the conversation's last verified request (where the bot
        last answered). Without it, the place is read back from the conversation id
        (``slack-user_channel[_thread]``, built from verified requests too), and as a last resort the
        user's DM is opened (``conversations.open``, scope ``im:write``)."""
        if not self.configured:
            raise RuntimeError("The Slack channel is not configured (token / signing secret).")
        if not conversation_id.startswith(CONVERSATION_PREFIX):
            raise ValueError("Not a Slack conversation id.")
        reference = reference or {}
        channel, thread = reference.get("out_channel"), reference.get("thread_id")
        parts = conversation_id[len(CONVERSATION_PREFIX):].split("_")
        if not isinstance(channel, str) or not channel:
            channel = parts[1] if len(parts) >= 2 else None
            thread = parts[2] if len(parts) >= 3 else None
        if not channel:
            opened = await make_client(self.slack_token, self.slack_api_url, self.proxy).conversations_open(
                users=parts[0]
            )
            channel = opened["channel"]["id"]
        output = SlackBot(self.slack_token, channel, thread, self.proxy, self.slack_api_url, raise_errors=True)
        if buttons:
            await output.send_text_with_buttons(channel, text, buttons)
        else:
            await output.send_text_message(channel, text)
