"""The Teams (Bot Framework) channel's webhook, ``POST /webhooks/botframework/webhook``, with hand-off
routing in front of the bot.

:class:`BotFrameworkInput` is a Rasa ``InputChannel`` of its own (Rasa 3.6's ``BotFrameworkInput``
downloads the signing keys in its constructor, validates tokens loosely and posts with blocking
``requests``; none of it is used). For each request:

* **Configured and verified first.** Without an app id and password: 503 "not configured". Over
  256 KB: 413. The token is checked (``verification.TokenVerifier``: 401, or 503 with ``Retry-After``
  while Microsoft's keys can't be fetched) before the body is read as an activity.
* **Malformed bodies are 4xx.** Rasa swallows a bad activity and answers 200 (or 500 on bad JSON);
  here a body that is not a JSON object, or a message without ``conversation.id`` / ``from.id`` /
  ``serviceUrl``: 400. Activities other than messages are acknowledged (200) and ignored; a
  redelivered activity (same conversation and id) is answered once.
* **Incoming text.** ``imBack`` (the payload as text) and ``messageBack`` (``value.payload``) clicks
  both reach the bot as the payload; the bot's own @mention in channel messages and HTML markup are
  removed.
* **Conversation ids** are namespaced: ``teams-<from.id>``, so no id of another channel can name one.
* **Hand-off.** After a request's token is verified, where its conversation lives (``serviceUrl``,
  conversation, bot account, user, tenant) is stored server-side (``bot.handoff.conversation_refs``),
  and ``push_to_conversation`` posts a specialist's words (join/leave notices, back-online notices)
  into that Teams conversation; the tracker's metadata is never used to pick the destination.
* **Shared files.** A message's file attachments (``contentUrl``, or ``content.downloadUrl`` of a
  ``application/vnd.microsoft.teams.file.download.info``) go through the file-share flow
  (``bot.server.channels.file_share``), downloaded by ``outbound.TeamsDownloads``; the report is the
  reply, with the converted CSV attached inline. A date-order answer (a click or the typed payload)
  re-checks the kept file. While a specialist holds the conversation, files are not checked (the
  message goes to the specialist). File names, contents, URLs and message text are never logged.

Set-up: docs/teams.md.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.server.channels import file_replies
from bot.server.channels.file_share import FileChat, FileShare, SharedFile
from bot.server.channels.routing import HandoffRouter
from bot.server.channels.teams.outbound import BotConnector, TeamsDownloads, TeamsOutput
from bot.server.channels.teams.settings import CONVERSATION_PREFIX, BotFrameworkSettings
from bot.server.channels.teams.verification import RequestRejected, TokenVerifier

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"
AT_TAG = re.compile(r"<at\b[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
HTML_TAG = re.compile(r"</?(?:p|div|span|br|b|i|u|strong|em|at|a|ul|ol|li|code|pre|blockquote)\b[^>]*>", re.IGNORECASE)


def _text_of(activity: Mapping[str, Any]) -> str:
    """What the user said or clicked, without the bot's @mention and HTML markup."""
    text = activity.get("text") if isinstance(activity.get("text"), str) else ""
    bot_id = (activity.get("recipient") or {}).get("id") if isinstance(activity.get("recipient"), dict) else None
    for entity in activity.get("entities") or []:
        if (
            isinstance(entity, dict)
            and entity.get("type") == "mention"
            and isinstance(entity.get("text"), str)
            and isinstance(entity.get("mentioned"), dict)
            and entity["mentioned"].get("id") == bot_id
        ):
            text = text.replace(entity["text"], " ")
    text = AT_TAG.sub(" ", text) if "<at" in text.lower() else text
    if HTML_TAG.search(text) or (activity.get("textFormat") in ("xml", "html")):
        text = html.unescape(HTML_TAG.sub(" ", text))
    text = re.sub(r"\s+", " ", text).strip()
    value = activity.get("value")
    if isinstance(value, dict):  # messageBack / Action.Submit: our cards put the payload here
        for key in ("payload", "text"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key].strip()
    elif not text and isinstance(value, str):
        return value.strip()
    return text


def shared_files(activity: Mapping[str, Any]) -> List[SharedFile]:
    """The files attached to a message (name, download URL): Teams file download info
    (``content.downloadUrl``) or any attachment with a ``contentUrl``; cards and the HTML copy of the
    message Teams adds are not files."""
    found: List[SharedFile] = []
    attachments = activity.get("attachments")
    for att in attachments if isinstance(attachments, list) else []:
        if not isinstance(att, dict) or not isinstance(att.get("contentType"), str):
            continue
        kind = att["contentType"].lower()
        content = att.get("content") if isinstance(att.get("content"), dict) else {}
        if kind == FILE_DOWNLOAD_INFO:
            url = content.get("downloadUrl")
        elif kind.startswith(("application/vnd.microsoft.card", "text/html")):
            continue
        else:
            url = att.get("contentUrl")
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
            name = att.get("name") if isinstance(att.get("name"), str) and att.get("name") else "upload"
            found.append(SharedFile(name, url))
    return found


def activity_metadata(activity: Mapping[str, Any]) -> Dict[str, Any]:
    """Where the conversation lives (for replies pushed later), stored with the user's message."""
    conversation = activity.get("conversation") if isinstance(activity.get("conversation"), dict) else {}
    channel_data = activity.get("channelData") if isinstance(activity.get("channelData"), dict) else {}
    tenant = (channel_data.get("tenant") or {}).get("id") if isinstance(channel_data.get("tenant"), dict) else None
    sender = activity.get("from") if isinstance(activity.get("from"), dict) else {}
    recipient = activity.get("recipient") if isinstance(activity.get("recipient"), dict) else {}
    pick = lambda d, keys: {k: d[k] for k in keys if isinstance(d.get(k), (str, bool))}  # noqa: E731
    reference = {
        "serviceUrl": activity.get("serviceUrl"),
        "channelId": activity.get("channelId"),
        "conversation": pick(conversation, ("id", "conversationType", "tenantId", "isGroup", "name")),
        "bot": pick(recipient, ("id", "name")),
        "user": pick(sender, ("id", "name", "aadObjectId")),
        "tenantId": tenant or conversation.get("tenantId"),
        "activityId": activity.get("id"),
        "locale": activity.get("locale"),
    }
    metadata: Dict[str, Any] = {"botframework": {k: v for k, v in reference.items() if v not in (None, {}, "")}}
    zone = activity.get("localTimezone")  # the Teams client's IANA zone: how the customer reads times
    if isinstance(zone, str) and 0 < len(zone) <= 64:
        metadata["timezone"] = zone
    return metadata


def conversation_of(activity: Mapping[str, Any]) -> str:
    """The conversation id of a (checked) message activity: ``teams-<from.id>``."""
    return CONVERSATION_PREFIX + activity["from"]["id"]


def conversation_reference(activity: Mapping[str, Any]) -> Dict[str, Any]:
    """What a later push needs (``activity_metadata`` without the per-message activity id and locale)."""
    reference = dict(activity_metadata(activity)["botframework"])
    reference.pop("activityId", None)
    reference.pop("locale", None)
    return reference


def with_attachments(activity: Mapping[str, Any], metadata: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The message's metadata with the activity's ``attachments`` merged in (as Rasa's connector does)."""
    if activity.get("attachments"):
        attachments = {"attachments": activity["attachments"]}
        if metadata:
            metadata.update(attachments)
        else:
            metadata = attachments
    return metadata


class BotFrameworkInput(InputChannel):
    """Teams / Bot Framework input channel (``/webhooks/botframework/webhook``) with hand-off routing."""

    @classmethod
    def name(cls) -> str:
        return "botframework"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "BotFrameworkInput":
        return cls(settings=BotFrameworkSettings.from_credentials(credentials))

    def __init__(
        self,
        app_id: Optional[str] = None,
        app_password: Optional[str] = None,
        settings: Optional[BotFrameworkSettings] = None,
    ) -> None:
        self.settings = settings or BotFrameworkSettings.from_credentials({"app_id": app_id, "app_password": app_password})
        self.verifier = TokenVerifier(self.settings)  # nothing is fetched until the first request
        self.connector = BotConnector(self.settings)
        self.downloads = TeamsDownloads(self.connector)
        self.file_share = FileShare("Teams", self.settings.max_file_bytes or file_replies.max_file_bytes())
        self._seen: "OrderedDict[Tuple[str, str], None]" = OrderedDict()
        if not self.settings.configured:
            logger.warning(
                # worded so the log masking leaves it whole ("password (X" would read as a pasted password)
                "The Teams (Bot Framework) channel is enabled but not configured: its webhook answers 503 "
                "until MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD are set."
            )

    # ------------------------------------------------------------------ the webhook
    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        try:
            activity = json.loads(request.body or b"null")
        except ValueError:
            return None
        return activity_metadata(activity) if isinstance(activity, dict) else None

    @staticmethod
    def _parse(body: bytes) -> Dict[str, Any]:
        try:
            activity = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestRejected(400, "the body is not JSON") from None
        if not isinstance(activity, dict):
            raise RequestRejected(400, "the body is not a JSON object (an activity)")
        if not isinstance(activity.get("type"), str) or not activity["type"]:
            raise RequestRejected(400, "the activity has no type")
        return activity

    @staticmethod
    def _check_message(activity: Mapping[str, Any]) -> None:
        conversation, sender = activity.get("conversation"), activity.get("from")
        if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str) or not conversation["id"]:
            raise RequestRejected(400, "the message has no conversation.id")
        if not isinstance(sender, dict) or not isinstance(sender.get("id"), str) or not sender["id"]:
            raise RequestRejected(400, "the message has no from.id")
        service_url = activity.get("serviceUrl")
        if (
            not isinstance(service_url, str)
            or urlsplit(service_url).scheme not in ("https", "http")
            or not urlsplit(service_url).netloc
        ):
            raise RequestRejected(400, "the message has no valid serviceUrl")
        for key in ("recipient", "channelData"):
            if activity.get(key) is not None and not isinstance(activity.get(key), dict):
                raise RequestRejected(400, f"the message's {key} is not an object")
        if activity.get("text") is not None and not isinstance(activity.get("text"), str):
            raise RequestRejected(400, "the message's text is not a string")

    def _first_time(self, activity: Mapping[str, Any]) -> bool:
        """False for a redelivered activity (same conversation and activity id)."""
        activity_id = activity.get("id")
        if not isinstance(activity_id, str) or not activity_id:
            return True
        key = (activity["conversation"]["id"], activity_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > 2000:
            self._seen.popitem(last=False)
        return True

    def output_for(self, activity: Mapping[str, Any]) -> TeamsOutput:
        """Replies into the activity's conversation, from the bot to the user, as replies to it."""
        meta = activity_metadata(activity)["botframework"]
        return TeamsOutput(
            self.connector,
            activity["conversation"],
            activity.get("recipient"),
            activity["serviceUrl"],
            reply_to_id=activity.get("id") if isinstance(activity.get("id"), str) else None,
            tenant_id=meta.get("tenantId"),
        )

    async def handle_request(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """One webhook request: refused (4xx / 503) unless configured, verified and well-formed; a
        verified message's conversation is remembered, its files (or date-order answer) go through the
        file-share flow, anything else to ``on_new_message`` (the hand-off router). A valid activity
        is always answered 200, whatever happens while handling it."""
        try:
            if not self.settings.configured:
                raise RequestRejected(
                    503, "not configured", "the Teams channel is not configured (MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD)"
                )
            if len(request.body or b"") > MAX_BODY_BYTES:
                raise RequestRejected(413, "the body is too large")
            claims, key = await self.verifier.authenticate(request.headers.get("Authorization"))
            activity = self._parse(request.body or b"")
            self.verifier.check_binding(activity, claims, key)
            if activity["type"] != "message":
                logger.debug("Ignoring a Bot Framework %s activity.", activity["type"])
                return response.json({}, status=200)
            self._check_message(activity)
        except RequestRejected as rejected:
            if rejected.status != 503 or self.settings.configured:
                logger.warning("Rejected a Bot Framework request (%s): %s", rejected.status, rejected.reason)
            headers = {"Retry-After": str(max(1, int(self.settings.jwks_retry_seconds)))} if rejected.status == 503 else None
            if rejected.status == 401:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return response.json({"error": rejected.public}, status=rejected.status, headers=headers)

        if not self._first_time(activity):
            logger.info("Ignoring a redelivered Bot Framework activity %s.", activity.get("id"))
            return response.json({}, status=200)

        # verified (token, serviceurl claim = serviceUrl): where this conversation is reached from now on
        remember = getattr(on_new_message, "remember", None)
        if remember is not None:
            await remember(conversation_of(activity), self.name(), conversation_reference(activity))

        files = shared_files(activity)
        order = file_replies.parse_date_order_payload(_text_of(activity))
        if files or order:
            try:
                handled = await self.file_share.handle(
                    on_new_message, conversation_of(activity), self._file_chat(activity), files=files, date_order=order
                )
            except Exception:  # never a 500 for a valid activity
                logger.exception("Checking a file shared in Teams failed.")
                handled = True
            if handled:
                return response.json({}, status=200)
            if files and not _text_of(activity):  # a specialist holds the conversation: tell them a file came
                activity["text"] = file_replies.shared_note([f.name for f in files])

        metadata = with_attachments(activity, self.get_metadata(request))
        message = UserMessage(
            text=_text_of(activity),
            output_channel=self.output_for(activity),
            sender_id=conversation_of(activity),
            input_channel=self.name(),
            metadata=metadata,
        )
        try:
            await on_new_message(message)
        except Exception:  # the activity was valid: answer 200 so the Bot Framework doesn't redeliver it
            logger.exception("Could not handle a Teams message from %s.", message.sender_id)
        return response.json({}, status=200)

    # ------------------------------------------------------------------ shared files (manual upload assistant)
    def _file_chat(self, activity: Mapping[str, Any]) -> FileChat:
        """The file-share flow's view of this Teams conversation: replies to the user, attachments
        fetched by ``outbound.TeamsDownloads``, the converted CSV attached inline, the region from the
        activity's locale; the pending file is per Teams conversation and user."""
        output = self.output_for(activity)
        sender = activity["from"]["id"]
        service_url = activity["serviceUrl"]
        return FileChat(
            key=f"{activity['conversation']['id']}|{sender}",
            send_text=lambda text: output.send_text_message(sender, text),
            send_question=lambda text, buttons: output.send_text_with_buttons(sender, text, buttons),
            send_report=lambda reply: output.send_report(sender, reply),
            download=lambda shared: self.downloads.download(shared.url, service_url),
            region=file_replies.region_from_locale(activity.get("locale")),
        )

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        router = HandoffRouter(on_new_message)
        blueprint = Blueprint("botframework_webhook", __name__)

        @blueprint.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.settings.configured else "not_configured"})

        @blueprint.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self.handle_request(request, router)

        return router.attach(blueprint)

    # ------------------------------------------------------------------ hand-off pushes
    async def push_to_conversation(
        self, conversation_id: str, reference: Optional[Mapping[str, Any]], text: str, buttons: Optional[List[Dict[str, Any]]]
    ) -> bool:
        """Posts a specialist's message (or a join/leave notice) into the user's Teams conversation.

        ``reference`` is the conversation reference stored from its last verified request
        (``conversation_reference``; ``{"botframework": reference}`` is read too)."""
        ref = reference if isinstance(reference, Mapping) else None
        if ref is not None and isinstance(ref.get("botframework"), Mapping):
            ref = ref["botframework"]
        if not isinstance(ref, Mapping):
            logger.warning(
                "No Teams conversation is known for %s: the hand-off message stays in the transcript only.", conversation_id
            )
            return False
        conversation = ref.get("conversation") if isinstance(ref.get("conversation"), Mapping) else {}
        service_url = ref.get("serviceUrl")
        if not isinstance(service_url, str) or not conversation.get("id"):
            logger.warning("The Teams conversation of %s is incomplete (no serviceUrl / conversation id).", conversation_id)
            return False
        output = TeamsOutput(self.connector, conversation, ref.get("bot") or None, service_url, tenant_id=ref.get("tenantId"))
        recipient = (ref.get("user") or {}).get("id") if isinstance(ref.get("user"), Mapping) else None
        recipient = recipient or conversation_id.removeprefix(CONVERSATION_PREFIX)
        if buttons:
            await output.send_text_with_buttons(recipient, text, buttons)
        else:
            await output.send_text_message(recipient, text)
        return True
