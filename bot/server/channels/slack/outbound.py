"""What the Slack channel sends to Slack: messages through the Web API, and shared files' downloads.

* :func:`make_client`: every Web API client of the channel uses the configured base URL
  (``slack_api_url``, env ``SLACK_API_URL``, default ``https://slack.com/api/``, so tests and proxies
  can stand in for Slack) and retries once when Slack rate-limits.
* :class:`SlackBot`, the output channel: text escaped for Slack, buttons as Block Kit (``cards``),
  no legacy ``as_user``, replies in the thread it was made for, converted files uploaded with
  ``files_upload_v2`` (scope ``files:write``). Web API failures are logged and swallowed while the
  bot answers (an exception would abort the turn and lose the tracker update); ``raise_errors=True``
  (hand-off pushes) re-raises.
* :class:`SlackDownloads`, a shared file's bytes: fetched with the bot token only from
  ``files.slack.com`` (https) or the ``slack_api_url`` host, redirects not followed, through the
  outbound policy (``bot/outbound.py``, settings ``outbound.slack`` in bankfeed.yml: public addresses
  on ports 80/443 only, resolved once and connected to as checked, no proxy), the size capped while
  streaming (scope ``files:read``).

Set-up: docs/slack.md.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text
from urllib.parse import urlsplit

from rasa.core.channels.slack import SlackBot as RasaSlackBot
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import OutboundClient, OutboundPolicy, OutboundRefused
from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused
from bot.server.channels.slack.cards import button_blocks, message_text
from bot.upload import ConvertedFile

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
#: Where Slack serves ``url_private_download``; the bot token is sent there and to the API host only.
SLACK_FILES_HOST = "files.slack.com"
NOT_ATTACHED = "I couldn't attach the converted file here. You can convert it on our website's upload page."


def make_client(token: Optional[str], api_url: str, proxy: Optional[str] = None) -> AsyncWebClient:
    """Every Web API client of the channel: our base URL, one retry when Slack rate-limits."""
    client = AsyncWebClient(token=token, base_url=api_url, proxy=proxy, timeout=15)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    return client


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
        await self._post_message(channel=self.slack_channel or recipient_id, text=message_text(text))

    async def send_text_with_buttons(self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        recipient = self.slack_channel or recipient_id
        usable = [b for b in buttons if b.get("payload") and b.get("title")]
        if not usable:
            return await self.send_text_message(recipient, text)
        await self._post_message(channel=recipient, text=message_text(text), blocks=button_blocks(text, usable))

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        message = dict(json_message)
        channel = message.pop("channel", None) or self.slack_channel or recipient_id
        await self._post_message(channel=channel, **message)

    async def send_files(self, channel: Text, converted: List[ConvertedFile]) -> None:
        """The converted CSV(s) into the same DM / thread (``files_upload_v2``: scope files:write).
        A failure is logged and the user is told where else to convert the file."""
        try:
            await self.client.files_upload_v2(
                file_uploads=[{"content": c.content, "filename": c.filename, "title": c.filename} for c in converted],
                channel=channel,
                thread_ts=self.thread_id,
            )
        except Exception as error:
            logger.error("Uploading a converted file to Slack failed: %s.", type(error).__name__)
            await self.send_text_message(channel, NOT_ATTACHED)


class SlackDownloads:
    """A shared file's bytes, with the bot token, from Slack's hosts only.

    ``policy`` is the outbound policy of the downloads; None: bankfeed.yml's ``outbound.slack``
    (read on first use) with the download's limits."""

    def __init__(self, token: Optional[str], api_url: str, max_file_bytes: int, policy: Optional[OutboundPolicy] = None):
        self.token, self.api_url, self.max_file_bytes = token, api_url, max_file_bytes
        self.policy = policy

    def outbound_policy(self) -> OutboundPolicy:
        if self.policy is None:
            from bot.settings import outbound_policy

            self.policy = outbound_policy("slack").replace(
                max_bytes=self.max_file_bytes,
                read_timeout=file_replies.DOWNLOAD_TIMEOUT,
                total_timeout=file_replies.DOWNLOAD_TIMEOUT,
            )
        return self.policy

    def may_send_token_to(self, url: str) -> bool:
        """The bot token goes to Slack's file host (https) and to our configured API host only, and only
        where the outbound policy lets a request go (checked again, after resolving, when fetching)."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
            self.outbound_policy().check_url(url)
        except (ValueError, OutboundRefused):
            return False
        if parts.username or parts.password or not host:
            return False
        if parts.scheme == "https" and host == SLACK_FILES_HOST and port in (None, 443):
            return True
        return file_replies.same_origin(url, self.api_url)

    async def download(self, url: Any) -> bytes:
        """The file at ``url`` (``url_private_download``); FileRefused with what the user is told."""
        if not isinstance(url, str) or not self.may_send_token_to(url):
            logger.warning("Not downloading a shared Slack file from an unexpected host.")
            raise FileRefused(file_replies.UNREACHABLE)
        return await file_replies.download(lambda: self._fetch(url), "a shared Slack file")

    async def _fetch(self, url: str) -> bytes:
        # no proxy: the outbound policy connects to the address it checked (a proxy would resolve the name);
        # a redirect is not followed: it would leave the hosts the token may go to
        async with OutboundClient(self.outbound_policy(), use="slack") as client:
            return await file_replies.get_capped(
                client,
                url,
                self.max_file_bytes,
                "a shared Slack file",
                headers={"Authorization": f"Bearer {self.token}"},
                follow_redirects=False,
            )
