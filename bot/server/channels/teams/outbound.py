"""What the Teams (Bot Framework) channel sends: replies through the Bot Connector, attachment downloads.

* :class:`BotConnector`: Rasa posts with blocking ``requests`` (no timeout) to a hard-coded
  multi-tenant token endpoint. Here: async httpx with timeouts, through the outbound policy
  (``bot/outbound.py``, settings ``outbound.teams`` in bankfeed.yml); a client-credentials token
  from ``token_url``, cached until shortly before expiry, renewed once on a 401; one retry after a
  429 / 5xx. Token failures are logged as "Could not get BotFramework token ..." and the message is
  dropped; the conversation goes on. The connector token only goes to a ``serviceUrl`` whose host is
  on ``service_url_hosts`` (default: the Bot Framework / Teams service hosts), over https (http only
  to an address the outbound policy allows explicitly, i.e. local test fakes); anything else: nothing
  is sent, and it is logged.
* :class:`TeamsOutput`, the output channel of one conversation: text as markdown, buttons as hero
  cards of ``messageBack`` actions (``cards``), shared files' reports with the converted CSV inline.
* :class:`TeamsDownloads`: a shared file's bytes, with the connector token only from the activity's
  ``serviceUrl`` host, otherwise without credentials; every redirect re-checked; capped.

Set-up: docs/teams.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import quote, urlsplit

import httpx
from rasa.core.channels.channel import OutputChannel

from bot.outbound import OutboundClient, OutboundError, OutboundPolicy, OutboundRedirectLimit, OutboundRefused, host_matches
from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused, FileReply
from bot.server.channels.teams.cards import csv_attachments, hero_cards, image_card
from bot.server.channels.teams.settings import (
    CONVERSATION_PREFIX,
    MAX_CONNECTOR_ANSWER_BYTES,
    BotFrameworkSettings,
    LoopLock,
    describe,
)

logger = logging.getLogger(__name__)

TOKEN_RENEW_MARGIN = 300.0  # renew the connector token this many seconds before it expires


# ---------------------------------------------------------------------------------------------------- connector
class BotConnector:
    """Posts activities to the Bot Connector API with a cached client-credentials token."""

    def __init__(self, settings: BotFrameworkSettings):
        self.settings = settings
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self._failed_at: Optional[float] = None
        self._last_error = ""
        self._lock = LoopLock()

    def _cached_token(self) -> Optional[str]:
        return self._token if self._token and time.monotonic() < self._token_expires else None

    def _policy(self) -> OutboundPolicy:
        timeout = self.settings.http_timeout
        return self.settings.outbound_policy().replace(connect_timeout=timeout, read_timeout=timeout)

    def may_send_token_to(self, url: str) -> Optional[str]:
        """None when the connector token may be sent to ``url``, else why not (for the log): its host must
        be on ``service_url_hosts``, and it must be https unless the outbound policy allows its address
        explicitly (local test fakes). The outbound policy itself is applied when sending."""
        try:
            target = self._policy().check_url(url)
        except OutboundRefused as refused:
            return f"the outbound policy refuses it ({refused.reason})"
        if not host_matches(target.host, self.settings.service_url_hosts):
            return "its host is not an allowed Bot Framework service host (service_url_hosts)"
        if target.scheme != "https":
            explicit = target.ip is not None and any(a.matches(target.ip, target.port) for a in self._policy().allow)
            if not explicit:
                return "it is not https"
        return None

    async def token(self, client: OutboundClient) -> Optional[str]:
        """A bearer token for the connector, or None (logged) when Microsoft's login won't give one."""
        cached = self._cached_token()
        if cached:
            return cached
        async with self._lock.get():
            cached = self._cached_token()
            if cached:
                return cached
            s = self.settings
            if not s.configured:
                logger.error("Could not get BotFramework token: MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD are not set.")
                return None
            if self._failed_at is not None and time.monotonic() - self._failed_at < s.token_retry_seconds:
                # don't make every message of a turn wait for a login endpoint that just failed
                logger.error(
                    "Could not get BotFramework token (the last attempt, %.1fs ago, failed: %s).",
                    time.monotonic() - self._failed_at,
                    self._last_error,
                )
                return None
            token = await self._request_token(client)
            self._failed_at = None if token else time.monotonic()
            return token

    async def _request_token(self, client: OutboundClient) -> Optional[str]:
        s = self.settings
        try:
            r = await client.fetch(
                "POST",
                s.token_url,
                follow_redirects=False,
                max_bytes=MAX_CONNECTOR_ANSWER_BYTES,
                timeout=2 * s.http_timeout,
                data={
                    "grant_type": "client_credentials",
                    "client_id": s.app_id,
                    "client_secret": s.app_password,
                    "scope": s.token_scope,
                },
            )
        except OutboundRefused as refused:
            self._last_error = f"the outbound policy refuses the token URL ({refused.reason})"
            logger.error("Could not get BotFramework token from %s: %s", s.token_url, self._last_error)
            return None
        except (httpx.HTTPError, OutboundError, asyncio.TimeoutError) as error:
            self._last_error = describe(error) if str(error) else type(error).__name__
            logger.error("Could not get BotFramework token from %s: %s", s.token_url, self._last_error)
            return None
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code != 200 or not isinstance(data, dict) or not data.get("access_token"):
            detail = ""
            if isinstance(data, dict):
                detail = " ".join(str(data.get(k, "")) for k in ("error", "error_description")).strip()[:300]
            self._last_error = f"HTTP {r.status_code} {detail}".strip()
            logger.error(
                "Could not get BotFramework token from %s: HTTP %s %s (check MICROSOFT_APP_ID, "
                "MICROSOFT_APP_PASSWORD and, for single-tenant bots, MICROSOFT_APP_TENANT_ID)",
                s.token_url,
                r.status_code,
                detail,
            )
            return None
        try:
            lifetime = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = str(data["access_token"])
        self._token_expires = time.monotonic() + max(lifetime - TOKEN_RENEW_MARGIN, lifetime / 2)
        return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_expires = None, 0.0

    async def post_activity(self, service_url: str, conversation_id: str, activity: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """POSTs ``activity`` into the conversation; the connector's answer, or None (logged) on failure."""
        if not isinstance(service_url, str) or urlsplit(service_url).scheme not in ("https", "http") or not conversation_id:
            logger.error("Not sending a Teams message: bad serviceUrl or conversation id (%r, %r).", service_url, conversation_id)
            return None
        refusal = self.may_send_token_to(service_url)
        if refusal:
            logger.error(
                "Not sending a Teams message for conversation %s to %s: %s. Nothing was sent.",
                conversation_id,
                urlsplit(service_url).hostname,
                refusal,
            )
            return None
        url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation_id, safe='')}/activities"
        async with OutboundClient(self._policy(), use="teams") as client:
            for attempt in (1, 2):
                token = await self.token(client)
                if token is None:
                    logger.error("A Teams message for conversation %s was not sent (no BotFramework token).", conversation_id)
                    return None
                try:
                    r = await client.fetch(
                        "POST",
                        url,
                        json=activity,
                        headers={"Authorization": f"Bearer {token}"},
                        follow_redirects=False,
                        max_bytes=MAX_CONNECTOR_ANSWER_BYTES,
                        timeout=2 * self.settings.http_timeout,
                    )
                except (httpx.HTTPError, OutboundError, asyncio.TimeoutError) as error:
                    logger.error("Could not send a Teams message to %s: %s", url, describe(error))
                    return None
                if r.is_success:
                    try:
                        answer = r.json()
                    except ValueError:
                        answer = {}
                    return answer if isinstance(answer, dict) else {}
                if attempt == 1 and r.status_code in (401, 403):
                    self.invalidate(token)  # revoked or rotated secret: one retry with a fresh token
                    continue
                if attempt == 1 and (r.status_code == 429 or r.status_code >= 500):
                    try:
                        delay = float(r.headers.get("Retry-After", "0.5"))
                    except ValueError:
                        delay = 0.5
                    await asyncio.sleep(min(max(delay, 0.1), 2.0))
                    continue
                logger.error(
                    "The Bot Connector refused a Teams message for conversation %s: HTTP %s %s",
                    conversation_id,
                    r.status_code,
                    r.content[:300].decode("utf-8", "replace"),
                )
                return None
        return None


# ---------------------------------------------------------------------------------------------------- output
class TeamsOutput(OutputChannel):
    """Replies into one Teams conversation, posted through ``BotConnector``: text as markdown, buttons
    as hero cards (``cards``), from the bot to the user, as a reply to ``reply_to_id`` when set."""

    def __init__(
        self,
        connector: BotConnector,
        conversation: Mapping[str, Any],
        bot: Optional[Mapping[str, Any]],
        service_url: str,
        reply_to_id: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> None:
        self.connector = connector
        self.conversation = dict(conversation)
        self.bot = dict(bot or {}) or {"id": f"28:{connector.settings.app_id}"}
        self.service_url = service_url
        self.reply_to_id = reply_to_id
        self.tenant_id = tenant_id

    @classmethod
    def name(cls) -> str:
        return "botframework"

    def prepare_message(self, recipient_id: str, message_data: Dict[str, Any]) -> Dict[str, Any]:
        conversation = {k: v for k, v in self.conversation.items() if k in ("id", "conversationType", "tenantId", "isGroup")}
        channel_data: Dict[str, Any] = {"notification": {"alert": True}}
        if self.tenant_id:
            channel_data["tenant"] = {"id": self.tenant_id}
        data: Dict[str, Any] = {
            "type": "message",
            "from": self.bot,
            "recipient": {"id": recipient_id.removeprefix(CONVERSATION_PREFIX)},  # the bot's id -> the user's
            "conversation": conversation,
            "channelData": channel_data,
            "text": "",
        }
        if self.reply_to_id:
            data["replyToId"] = self.reply_to_id
        data.update(message_data)
        return data

    async def send(self, message_data: Dict[str, Any]) -> None:
        await self.connector.post_activity(self.service_url, str(self.conversation.get("id") or ""), message_data)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        text = (text or "").strip()
        if text:
            await self.send(self.prepare_message(recipient_id, {"text": text, "textFormat": "markdown"}))

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any) -> None:
        message = {"attachmentLayout": "list", "attachments": hero_cards((text or "").strip(), buttons or [])}
        await self.send(self.prepare_message(recipient_id, message))

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send(self.prepare_message(recipient_id, {"attachments": [image_card(image)]}))

    async def send_elements(self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any) -> None:
        for element in elements:
            await self.send(self.prepare_message(recipient_id, element))

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        """``json_message`` as the activity (its keys win over the usual ones)."""
        await self.send(self.prepare_message(recipient_id, dict(json_message)))

    async def send_report(self, recipient_id: str, reply: FileReply) -> None:
        """A shared file's report, with the converted CSV(s) attached inline (``cards.csv_attachments``)."""
        attachments, too_big = csv_attachments(reply.converted)
        text = reply.text
        if too_big:
            text += (
                "\n"
                + ", ".join(too_big)
                + (" is" if len(too_big) == 1 else " are")
                + " too large to attach in Teams; convert the file on our website's upload page to download it."
            )
        message: Dict[str, Any] = {"text": text, "textFormat": "markdown"}
        if attachments:
            message["attachments"] = attachments
        await self.send(self.prepare_message(recipient_id, message))


# ---------------------------------------------------------------------------------------------------- attachments
class TeamsDownloads:
    """A shared file's bytes. The connector token goes to the activity's serviceUrl host only (when
    that is an allowed service host); any other URL is fetched without credentials. Every hop goes
    through the outbound policy (public addresses on 80/443, resolved once, every redirect checked
    again), with a timeout and the size cap (``max_file_bytes``, declared and while streaming)."""

    def __init__(self, connector: BotConnector):
        self.connector = connector
        self.settings = connector.settings

    async def download(self, url: str, service_url: str) -> bytes:
        """The file at ``url`` of an activity from ``service_url``; FileRefused with what the user is told."""
        limit = self.settings.max_file_bytes or file_replies.max_file_bytes()
        return await file_replies.download(lambda: self._fetch(url, service_url, limit), "a Teams attachment")

    async def _fetch(self, url: str, service_url: str, limit: int) -> bytes:
        timeout = min(self.settings.http_timeout * 3, file_replies.DOWNLOAD_TIMEOUT)
        policy = self.settings.outbound_policy().replace(
            max_redirects=file_replies.MAX_REDIRECTS, connect_timeout=timeout, read_timeout=timeout
        )
        token_allowed = self.connector.may_send_token_to(service_url) is None
        async with OutboundClient(policy, use="teams") as client:

            async def auth_for(hop: str) -> Optional[Dict[str, str]]:
                if not (token_allowed and file_replies.same_origin(hop, service_url)):
                    return None
                token = await self.connector.token(client)
                if token is None:
                    raise FileRefused(file_replies.UNREACHABLE)
                return {"Authorization": f"Bearer {token}"}

            try:
                return await file_replies.get_capped(client, url, limit, "a Teams attachment", auth_for=auth_for)
            except OutboundRedirectLimit:
                logger.warning("Downloading a Teams attachment failed: too many redirects.")
                raise FileRefused(file_replies.UNREACHABLE) from None
            except OutboundRefused:  # logged by bot.outbound (host and reason)
                raise FileRefused(file_replies.NOT_A_FILE) from None
