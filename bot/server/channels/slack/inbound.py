"""The Slack channel's webhook (``POST /webhooks/slack/webhook``): Events API and interactivity, with
hand-off routing in front of the bot.

Rasa's ``SlackInput`` with what a production Slack app needs and Rasa 3.6.21 does not do (read in
``rasa/core/channels/slack.py``):

* **verified first**: without a token and signing secret the channel stays mounted but answers 503
  (the server still starts); a request without a valid signature gets 401 before its body is even
  parsed (``verification.verify_signature``; Rasa answers 400).
* **3 seconds**: the request is answered as soon as it is verified and parsed; the bot (NLU, actions,
  the bank-site check) runs in a background task, as Rasa's own ``process_message`` does. Each
  delivery is handled once, retries and the ``message`` / ``app_mention`` twins included
  (``verification.Deliveries``).
* **content types**: Rasa compares the whole ``Content-Type`` header, so
  ``application/json; charset=utf-8`` is silently dropped with a 200. We compare the media type only.
* **malformed requests** get a 4xx (400 bad JSON / missing fields, 415 other content types), never
  Rasa's 500s (a non-object JSON body, a form without ``payload``, an unsupported interaction).
* **which messages**: a person's messages (plain, thread broadcasts, file shares) in a DM, in the
  support channel (``slack_channel``: answered without a mention) or mentioning the bot elsewhere;
  edits, deletions, joins, bot messages (ours included) are ignored.
* **conversations**: ``conversation_granularity: thread`` (the default here) makes each thread of the
  support channel its own conversation, and the bot answers in that thread. A direct message is one
  conversation per user and DM (Rasa would make every top-level DM message a new "thread"
  conversation, since its thread id falls back to the message's own ``ts``). Ids are namespaced:
  ``slack-<user>_<channel>[_<thread>]`` (``slack-<user>`` with ``conversation_granularity: sender``),
  so no id of another channel can name a Slack conversation.
* **buttons**: a click reaches the bot as the button's payload, and the clicked message's buttons are
  replaced by the choice (``cards.chosen_blocks``).
* **hand-off**: after a request's signature is verified, where its conversation is answered (channel
  and thread) is stored server-side (``bot.handoff.conversation_refs``); ``push_to_conversation``
  posts a specialist's messages (and back-online notices) there, never where a tracker's metadata says.
* **shared files** (``file_share``): up to 3 files per message go through the file-share flow
  (``bot.server.channels.file_share``): downloaded by ``outbound.SlackDownloads`` (declared ``size``
  checked against ``max_file_bytes`` first), the report posted in the DM / thread and the converted
  CSV(s) uploaded there; a date-order question's buttons come back as clicks. While a specialist
  holds the conversation, files are not checked: the message (or "(shared a file: ...)") goes to the
  specialist. File names, contents and message text are never logged.

Configuration (credentials.yml, each key falling back to an environment variable): ``slack_token``
(``SLACK_BOT_TOKEN``), ``slack_signing_secret`` (``SLACK_SIGNING_SECRET``), ``slack_api_url``
(``SLACK_API_URL``), ``slack_channel`` (``SLACK_SUPPORT_CHANNEL``: the support channel's id),
``conversation_granularity`` (``thread``), ``max_file_bytes`` (``BANKFEED_UPLOAD_MAX_BYTES``), ``proxy``.
Set-up: docs/slack.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Text, Tuple
from urllib.parse import parse_qs, urlparse

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.slack import SlackInput as RasaSlackInput
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.server.channels import file_replies
from bot.server.channels.file_share import FileChat, FileShare, SharedFile
from bot.server.channels.routing import HandoffRouter
from bot.server.channels.slack.cards import chosen_blocks
from bot.server.channels.slack.outbound import DEFAULT_API_URL, SlackBot, SlackDownloads, make_client
from bot.server.channels.slack.verification import (
    RETRY_NUM_HEADER,
    RETRY_REASON_HEADER,
    AnswerWatch,
    Claim,
    Deliveries,
    verify_signature,
)

logger = logging.getLogger(__name__)

CONVERSATION_PREFIX = "slack-"
GRANULARITIES = ("sender", "channel", "thread")
# message subtypes that are still a person writing to us; every other subtype (edits, deletions,
# joins, bot messages, ...) is not a user message
USER_SUBTYPES = {None, "thread_broadcast", "file_share"}


class BadRequest(Exception):
    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def shared_file(file: Dict[str, Any]) -> SharedFile:
    """A file object of a ``file_share`` message, for the file-share flow: no URL for files that are
    not in Slack (``external``), deleted (``tombstone``) or hidden by the workspace's plan."""
    url = file.get("url_private_download") or file.get("url_private")
    if file.get("mode") in ("external", "tombstone", "hidden_by_limit") or not isinstance(url, str):
        url = None
    size = file.get("size")
    return SharedFile(
        name=str(file.get("name") or file.get("title") or "upload"),
        url=url,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


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
                f"Slack 'conversation_granularity' must be one of {', '.join(GRANULARITIES)}, not {conversation_granularity!r}."
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
        self.deliveries = Deliveries()
        self._background_tasks: Set[asyncio.Task] = set()
        self.max_file_bytes = file_replies.max_file_bytes(max_file_bytes)
        self.downloads = SlackDownloads(self.slack_token, self.slack_api_url, self.max_file_bytes)
        self.file_share = FileShare("Slack", self.max_file_bytes)

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
                raise BadRequest("The body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise BadRequest("The body must be a JSON object.")
            return "event", data
        if media_type == "application/x-www-form-urlencoded":
            try:
                form = parse_qs((request.body or b"").decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("The form body is not valid UTF-8.") from None
            raw = form.get("payload")
            if not raw:
                raise BadRequest("The form has no 'payload' field.")
            try:
                payload = json.loads(raw[0])
            except (ValueError, RecursionError):
                raise BadRequest("The 'payload' field is not valid JSON.") from None
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
        claim = Claim(
            f"slack:message:{team}:{channel}:{ts}", body.get("event_id") if isinstance(body.get("event_id"), str) else None
        )

        text = self._sanitize_user_message(text, bot_users) if text else ""
        if files:
            self._spawn(
                self.deliveries.once(
                    router, claim, lambda: self._handle_files(router, files, text, self._conversation(user, metadata), metadata)
                )
            )
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
            raise BadRequest("The interaction's action is malformed.") from None
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
            self._spawn(
                self.deliveries.once(
                    router,
                    claim,
                    lambda: self._answer_date_order(
                        router, order, text.strip(), self._conversation(user["id"], metadata), metadata
                    ),
                )
            )
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
        await make_client(self.slack_token, self.slack_api_url, self.proxy).chat_update(
            channel=channel, ts=message["ts"], text=message.get("text") or chosen, blocks=chosen_blocks(blocks, user, chosen)
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

    def _file_chat(self, conversation_id: str, metadata: Dict[str, Any]) -> FileChat:
        """The file-share flow's view of this DM / thread: answers posted there, files fetched with
        the bot token (``outbound.SlackDownloads``), the converted CSV(s) uploaded there."""
        channel = metadata["out_channel"]
        output = self.get_output_channel(channel, metadata.get("thread_id"))

        async def send_report(reply: file_replies.FileReply) -> None:
            await output.send_text_message(channel, reply.text)
            if reply.converted:
                await output.send_files(channel, reply.converted)

        return FileChat(
            key=conversation_id,
            send_text=lambda text: output.send_text_message(channel, text),
            send_question=lambda text, buttons: output.send_text_with_buttons(channel, text, buttons),
            send_report=send_report,
            download=lambda shared: self.downloads.download(shared.url),
        )

    async def _handle_files(
        self,
        router: Callable[[UserMessage], Awaitable[Any]],
        files: List[Dict[str, Any]],
        text: str,
        conversation_id: str,
        metadata: Dict[str, Any],
    ) -> None:
        """Checks each shared file and answers in the DM / thread; while a specialist holds the
        conversation the message goes to them instead (files are not checked)."""
        shared = [shared_file(f) for f in files]
        await self._remember(router, conversation_id, metadata)
        if not await self.file_share.handle(router, conversation_id, self._file_chat(conversation_id, metadata), files=shared):
            self._dispatch(router, text or file_replies.shared_note([f.name for f in shared]), conversation_id, metadata)

    async def _answer_date_order(
        self,
        router: Callable[[UserMessage], Awaitable[Any]],
        order: str,
        text: str,
        conversation_id: str,
        metadata: Dict[str, Any],
    ) -> None:
        """A click on a date-order button: the kept file re-checked; while a specialist holds the
        conversation the click goes to them like any other (the file is not checked)."""
        await self._remember(router, conversation_id, metadata)
        if not await self.file_share.handle(
            router, conversation_id, self._file_chat(conversation_id, metadata), date_order=order
        ):
            self._dispatch(router, text, conversation_id, metadata)

    # ------------------------------------------------------------------ to the bot, in the background
    def _dispatch(
        self,
        router: Callable[[UserMessage], Awaitable[Any]],
        text: str,
        conversation_id: str,
        metadata: Dict[str, Any],
        claim: Optional["Claim"] = None,
    ) -> None:
        output = AnswerWatch(self.get_output_channel(metadata["out_channel"], metadata.get("thread_id")))
        message = UserMessage(text, output, conversation_id, input_channel=self.name(), metadata=metadata)

        async def remember_then_route() -> None:
            await self._remember(router, conversation_id, metadata)
            await router(message)

        self._spawn(self.deliveries.once(router, claim, remember_then_route, output))

    async def _remember(self, router: Any, conversation_id: str, metadata: Dict[str, Any]) -> None:
        """Stores the conversation's place; only ever called for a request whose signature was verified."""
        remember = getattr(router, "remember", None)
        if remember is not None:
            await remember(conversation_id, self.name(), self._reference(metadata))

    # ------------------------------------------------------------------ in the background
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
        parts = conversation_id[len(CONVERSATION_PREFIX) :].split("_")
        if not isinstance(channel, str) or not channel:
            channel = parts[1] if len(parts) >= 2 else None
            thread = parts[2] if len(parts) >= 3 else None
        if not channel:
            opened = await make_client(self.slack_token, self.slack_api_url, self.proxy).conversations_open(users=parts[0])
            channel = opened["channel"]["id"]
        output = SlackBot(self.slack_token, channel, thread, self.proxy, self.slack_api_url, raise_errors=True)
        if buttons:
            await output.send_text_with_buttons(channel, text, buttons)
        else:
            await output.send_text_message(channel, text)
