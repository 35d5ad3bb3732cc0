"""Microsoft Teams (Bot Framework) channel with hand-off routing: ``POST /webhooks/botframework/webhook``.

Rasa 3.6's connector (``rasa.core.channels.botframework``) is the base, with what it lacks for
production made strict and network-safe:

* **No network at start-up.** Rasa's ``BotFrameworkInput.__init__`` downloads Microsoft's OpenID keys
  (blocking ``requests``, no timeout): with no network the server does not start. Here the keys are
  fetched lazily on the first request (async, with a timeout), cached, refreshed daily and when a token
  names an unknown key id (rate-limited), with a back-off after failures. While they cannot be fetched
  and none are cached, requests get **503** (``Retry-After``), never a crash.
* **Strict token validation.** Rasa decodes with the *token's own* ``alg`` header, checks only the
  signature, audience and expiry, lets a missing ``kid`` or a key-refresh ``ConnectionError`` escape as
  a 500, and never looks at the issuer or the ``serviceurl`` claim, so a valid token could be replayed
  with another ``serviceUrl`` and the bot would post its connector token there. Here: RS256 only,
  ``kid`` required, audience = app id, issuer in ``allowed_issuers``, ``exp`` required (small leeway),
  a ``serviceurl`` claim required and equal to the activity's ``serviceUrl``, and the key's
  ``endorsements`` (when published) must include the activity's ``channelId``. Anything else: **401**
  and nothing is processed.
* **Malformed bodies are 4xx.** Rasa swallows a bad activity and answers 200 (or 500 on bad JSON);
  here a body that is not a JSON object, or a message without ``conversation.id`` / ``from.id`` /
  ``serviceUrl``: **400**; over 256 KB: 413.
* **Replies.** Rasa posts with blocking ``requests`` (no timeout) to a hard-coded multi-tenant token
  endpoint, and renders buttons as a HeroCard whose buttons are Rasa's ``{"title", "payload"}`` dicts,
  which are not Bot Framework card actions (no ``type``/``value``), so Teams shows no usable buttons.
  Here: async httpx with timeouts; a client-credentials token from ``token_url`` (single-tenant
  ``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`` when ``tenant_id`` is set), cached
  until shortly before expiry and renewed once on a 401; buttons become ``messageBack`` actions (the
  user sees the title, the bot gets the payload as ``text`` and ``value.payload``; URL buttons are
  ``openUrl``). Token failures are logged as "Could not get BotFramework token ..." and the message is
  dropped; the conversation goes on.
* **Incoming text.** ``imBack`` (the payload as text) and ``messageBack`` (``value.payload``) clicks
  both reach the bot as the payload; the bot's own @mention in channel messages is removed.
* **Conversation ids** are namespaced: ``teams-<from.id>``, so no id of another channel can name one.
* **Hand-off.** After a request's token is verified, where its conversation lives (``serviceUrl``,
  conversation, bot account, user, tenant) is stored server-side (``bot.handoff.conversation_refs``),
  and ``push_to_conversation`` posts a specialist's words (join/leave notices, back-online notices)
  into that Teams conversation; the tracker's metadata is never used to pick the destination.

* **Shared files.** A message's file attachments (``contentUrl``, or ``content.downloadUrl`` of a
  ``application/vnd.microsoft.teams.file.download.info``) are checked by the manual upload assistant:
  downloaded with the connector token only when on the activity's ``serviceUrl`` host (and that host
  is an allowed service host, see below), otherwise without credentials; every fetch goes through the
  outbound policy (``bot/outbound.py``, settings ``outbound.teams`` in bankfeed.yml): http(s) to
  public addresses on ports 80/443 only, resolved once and connected to as checked, every redirect
  re-checked, with a timeout and a size cap (``max_file_bytes``, declared and while streaming). The report is the reply, with the converted CSV attached inline as a
  ``data:text/csv`` URI (up to 64 KB; larger ones are named, not attached). An ambiguous date order is
  asked with two buttons; the file waits 15 minutes in memory for the answer. While a specialist holds
  the conversation, files are not checked (the message goes to the specialist). File names, contents,
  URLs and message text are never logged.

* **Where the connector token may go.** Replies, hand-off pushes and attachment downloads with the
  token go to a ``serviceUrl`` whose host is on ``service_url_hosts`` (default: the Bot Framework /
  Teams service hosts, ``DEFAULT_SERVICE_URL_HOSTS``; ``*.example`` matches names below example),
  over https (http only to an address the outbound policy allows explicitly, i.e. local test fakes),
  and through the outbound policy. Anything else: nothing is sent, and it is logged. The token request
  (``token_url``) and the OpenID metadata / JWKS fetches go through the outbound policy too.

Credentials (``credentials.yml``), each with an environment fallback: ``app_id``
(``MICROSOFT_APP_ID``), ``app_password`` (``MICROSOFT_APP_PASSWORD``), ``tenant_id``
(``MICROSOFT_APP_TENANT_ID``, single-tenant bots), and for tests or sovereign clouds
``openid_metadata_url``, ``token_url``, ``token_scope``, ``allowed_issuers``, ``service_url_hosts``
(``BOTFRAMEWORK_SERVICE_URL_HOSTS``, comma-separated), plus tuning knobs
``http_timeout``, ``jwt_leeway``, ``jwks_cache_seconds``, ``jwks_retry_seconds``,
``jwks_refresh_min_seconds``. Without an app id and password the channel still loads (the server
starts) but its webhook answers 503 "not configured". See docs/teams.md.
"""
from __future__ import annotations

import asyncio
import base64
import html
import json
import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm
from rasa.core.channels.botframework import BotFramework as RasaBotFramework
from rasa.core.channels.botframework import BotFrameworkInput as RasaBotFrameworkInput
from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.server.channels import file_replies
from bot.server.channels.file_replies import FileRefused
from bot.server.channels.routing import HandoffRouter
from bot.outbound import (OutboundClient, OutboundError, OutboundPolicy, OutboundRedirectLimit, OutboundRefused,
                          host_matches)

logger = logging.getLogger(__name__)

DEFAULT_OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
MULTI_TENANT_TOKEN_URL = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
SINGLE_TENANT_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
DEFAULT_TOKEN_SCOPE = "https://api.botframework.com/.default"
DEFAULT_ISSUERS: Tuple[str, ...] = ("https://api.botframework.com",)
#: Hosts a ``serviceUrl`` may name (the connector token is sent there): the public Teams service and the
#: US government clouds (GCC, GCC High, DoD; Microsoft's TeamsServiceEndpoints), other Bot Framework channels.
DEFAULT_SERVICE_URL_HOSTS: Tuple[str, ...] = (
    "smba.trafficmanager.net",
    "smba.infra.gcc.teams.microsoft.com",
    "smba.infra.gov.teams.microsoft.us",
    "smba.infra.dod.teams.microsoft.us",
    "*.botframework.com",
)
MAX_CONNECTOR_ANSWER_BYTES = 1024 * 1024  # a Bot Connector / token endpoint answer larger than this is refused

MAX_BODY_BYTES = 256 * 1024
MAX_CARD_BUTTONS = 6  # Teams shows at most six buttons on a hero card
#: Converted CSVs up to this size are attached inline (``data:`` URI); larger ones are described only.
MAX_INLINE_ATTACHMENT_BYTES = 64 * 1024
FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"
CONVERSATION_PREFIX = "teams-"
TOKEN_RENEW_MARGIN = 300.0  # renew the connector token this many seconds before it expires

BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)
AT_TAG = re.compile(r"<at\b[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
HTML_TAG = re.compile(r"</?(?:p|div|span|br|b|i|u|strong|em|at|a|ul|ol|li|code|pre|blockquote)\b[^>]*>", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------- settings
def _clean(value: Any) -> Optional[str]:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


@dataclass(frozen=True)
class BotFrameworkSettings:
    app_id: Optional[str]
    app_password: Optional[str]
    tenant_id: Optional[str]
    openid_metadata_url: str = DEFAULT_OPENID_METADATA_URL
    token_url: str = MULTI_TENANT_TOKEN_URL
    token_scope: str = DEFAULT_TOKEN_SCOPE
    allowed_issuers: Tuple[str, ...] = DEFAULT_ISSUERS
    http_timeout: float = 5.0
    jwt_leeway: float = 300.0  # Bot Framework SDKs allow five minutes of clock skew
    jwks_cache_seconds: float = 24 * 3600.0
    jwks_retry_seconds: float = 10.0  # after a failed key download, wait this long before trying again
    jwks_refresh_min_seconds: float = 60.0  # an unknown key id re-downloads the keys at most this often
    token_retry_seconds: float = 5.0  # after a failed token request, messages are dropped this long without retrying
    max_file_bytes: int = 0  # shared files: 0 = the upload assistant's limit
    service_url_hosts: Tuple[str, ...] = DEFAULT_SERVICE_URL_HOSTS  # where the connector token may be sent
    outbound: Optional[OutboundPolicy] = None  # None: bankfeed.yml's ``outbound.teams`` (bot/outbound.py)

    def outbound_policy(self) -> OutboundPolicy:
        """The outbound policy for every request of this channel."""
        if self.outbound is not None:
            return self.outbound
        from bot.settings import outbound_policy

        return outbound_policy("teams")

    @property
    def configured(self) -> bool:
        return bool(self.app_id and self.app_password)

    @classmethod
    def from_credentials(
        cls, credentials: Optional[Mapping[str, Any]], env: Optional[Mapping[str, str]] = None
    ) -> "BotFrameworkSettings":
        creds = dict(credentials or {})
        env = os.environ if env is None else env
        tenant_id = _clean(creds.get("tenant_id")) or _clean(env.get("MICROSOFT_APP_TENANT_ID"))
        token_url = _clean(creds.get("token_url"))
        if token_url is None:
            token_url = SINGLE_TENANT_TOKEN_URL.format(tenant=quote(tenant_id, safe="")) if tenant_id else MULTI_TENANT_TOKEN_URL
        issuers = creds.get("allowed_issuers")
        if isinstance(issuers, str):
            issuers = [i for i in re.split(r"[,\s]+", issuers) if i]
        issuers = tuple(str(i).strip() for i in (issuers or DEFAULT_ISSUERS) if str(i).strip())
        hosts = creds.get("service_url_hosts") or _clean(env.get("BOTFRAMEWORK_SERVICE_URL_HOSTS"))
        if isinstance(hosts, str):
            hosts = [h for h in re.split(r"[,\s]+", hosts) if h]
        hosts = tuple(str(h).strip().lower() for h in (hosts or DEFAULT_SERVICE_URL_HOSTS) if str(h).strip())

        def number(key: str) -> float:
            value = creds.get(key)
            return float(value) if value is not None and str(value).strip() != "" else float(getattr(cls, key))

        return cls(
            app_id=_clean(creds.get("app_id")) or _clean(env.get("MICROSOFT_APP_ID")),
            app_password=_clean(creds.get("app_password")) or _clean(env.get("MICROSOFT_APP_PASSWORD")),
            tenant_id=tenant_id,
            openid_metadata_url=_clean(creds.get("openid_metadata_url")) or DEFAULT_OPENID_METADATA_URL,
            token_url=token_url,
            token_scope=_clean(creds.get("token_scope")) or DEFAULT_TOKEN_SCOPE,
            allowed_issuers=issuers or DEFAULT_ISSUERS,
            http_timeout=number("http_timeout"),
            jwt_leeway=number("jwt_leeway"),
            jwks_cache_seconds=number("jwks_cache_seconds"),
            jwks_retry_seconds=number("jwks_retry_seconds"),
            jwks_refresh_min_seconds=number("jwks_refresh_min_seconds"),
            token_retry_seconds=number("token_retry_seconds"),
            max_file_bytes=file_replies.max_file_bytes(creds.get("max_file_bytes")),
            service_url_hosts=hosts or DEFAULT_SERVICE_URL_HOSTS,
        )


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _LoopLock:
    """An asyncio.Lock per event loop (the channel object may outlive a loop in tests)."""

    def __init__(self) -> None:
        self._locks: Dict[int, asyncio.Lock] = {}

    def get(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(id(loop))
        if lock is None:
            self._locks = {id(loop): asyncio.Lock()}  # forget locks of finished loops
            lock = self._locks[id(loop)]
        return lock


# ---------------------------------------------------------------------------------------------------- signing keys
class SigningKeysUnavailable(Exception):
    """Microsoft's signing keys could not be fetched and none are cached: tokens can't be verified."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public_key: Any
    endorsements: Optional[Tuple[str, ...]]


class OpenIdKeys:
    """The JWKS behind an OpenID metadata document: fetched lazily, cached, refreshed on unknown ``kid``."""

    def __init__(self, settings: BotFrameworkSettings):
        self.settings = settings
        self._keys: Dict[str, SigningKey] = {}
        self._fetched_at: Optional[float] = None
        self._failed_at: Optional[float] = None
        self._last_error = "not fetched yet"
        self._generation = 0
        self._lock = _LoopLock()

    @property
    def fetched(self) -> bool:
        return self._fetched_at is not None

    async def get(self, kid: str) -> Optional[SigningKey]:
        """The key ``kid``; None if Microsoft doesn't publish it; raises SigningKeysUnavailable."""
        if self._fetched_at is None or time.monotonic() - self._fetched_at > self.settings.jwks_cache_seconds:
            await self._refresh(keep_stale=bool(self._keys))
            if not self._keys:
                raise SigningKeysUnavailable(self._last_error)
            return self._keys.get(kid)
        if kid in self._keys:
            return self._keys[kid]
        if time.monotonic() - self._fetched_at < self.settings.jwks_refresh_min_seconds:
            return None  # fetched recently: a key id we don't know is not one of Microsoft's
        await self._refresh(keep_stale=False)  # maybe a key rotation
        return self._keys.get(kid)

    async def _refresh(self, keep_stale: bool) -> None:
        generation = self._generation
        async with self._lock.get():
            if self._generation != generation:  # another request refreshed (or failed) meanwhile
                return
            if self._failed_at is not None and time.monotonic() - self._failed_at < self.settings.jwks_retry_seconds:
                if keep_stale:
                    return
                raise SigningKeysUnavailable(self._last_error)
            try:
                keys = await asyncio.wait_for(self._fetch(), timeout=2 * self.settings.http_timeout + 1)
            except Exception as error:  # network, HTTP status, bad JSON, timeout: all mean "can't verify now"
                self._failed_at = time.monotonic()
                self._last_error = _describe(error)
                self._generation += 1
                logger.warning(
                    "Could not fetch the Bot Framework signing keys (%s): %s%s",
                    self.settings.openid_metadata_url, self._last_error,
                    "; using the cached keys" if keep_stale else "; Teams requests get 503 until they can be fetched",
                )
                if keep_stale:
                    return
                raise SigningKeysUnavailable(self._last_error) from None
            self._keys = keys
            self._fetched_at = time.monotonic()
            self._failed_at = None
            self._generation += 1
            logger.info("Fetched %d Bot Framework signing key(s).", len(keys))

    async def _fetch(self) -> Dict[str, SigningKey]:
        # both URLs (the configured one, and the jwks_uri the document names) go through the outbound policy
        policy = self.settings.outbound_policy()
        timeout = self.settings.http_timeout
        async with OutboundClient(policy.replace(connect_timeout=timeout, read_timeout=timeout), use="teams") as client:
            r = await client.fetch("GET", self.settings.openid_metadata_url, max_bytes=MAX_CONNECTOR_ANSWER_BYTES,
                                   timeout=timeout)
            if not r.is_success:
                raise ValueError(f"the OpenID metadata answered HTTP {r.status_code}")
            metadata = r.json()
            jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
            if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
                raise ValueError("the OpenID metadata has no usable jwks_uri")
            r = await client.fetch("GET", jwks_uri, max_bytes=MAX_CONNECTOR_ANSWER_BYTES, timeout=timeout)
            if not r.is_success:
                raise ValueError(f"the signing keys answered HTTP {r.status_code}")
            jwks = r.json()
        keys: Dict[str, SigningKey] = {}
        for jwk in (jwks.get("keys") if isinstance(jwks, dict) else None) or []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not isinstance(jwk.get("kid"), str):
                continue
            try:
                public_key = RSAAlgorithm.from_jwk(jwk)
            except Exception:
                logger.warning("Skipping an unreadable Bot Framework signing key (kid %s).", jwk.get("kid"))
                continue
            endorsements = jwk.get("endorsements")
            keys[jwk["kid"]] = SigningKey(
                jwk["kid"], public_key,
                tuple(str(e) for e in endorsements) if isinstance(endorsements, list) else None,
            )
        if not keys:
            raise ValueError("the JWKS holds no RSA signing keys")
        return keys


# ---------------------------------------------------------------------------------------------------- connector
class BotConnector:
    """Posts activities to the Bot Connector API with a cached client-credentials token."""

    def __init__(self, settings: BotFrameworkSettings):
        self.settings = settings
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self._failed_at: Optional[float] = None
        self._last_error = ""
        self._lock = _LoopLock()

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
                logger.error("Could not get BotFramework token (the last attempt, %.1fs ago, failed: %s).",
                             time.monotonic() - self._failed_at, self._last_error)
                return None
            token = await self._request_token(client)
            self._failed_at = None if token else time.monotonic()
            return token

    async def _request_token(self, client: OutboundClient) -> Optional[str]:
        s = self.settings
        try:
            r = await client.fetch(
                "POST", s.token_url, follow_redirects=False, max_bytes=MAX_CONNECTOR_ANSWER_BYTES,
                timeout=2 * s.http_timeout,
                data={"grant_type": "client_credentials", "client_id": s.app_id, "client_secret": s.app_password,
                      "scope": s.token_scope},
            )
        except OutboundRefused as refused:
            self._last_error = f"the outbound policy refuses the token URL ({refused.reason})"
            logger.error("Could not get BotFramework token from %s: %s", s.token_url, self._last_error)
            return None
        except (httpx.HTTPError, OutboundError, asyncio.TimeoutError) as error:
            self._last_error = _describe(error) if str(error) else type(error).__name__
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
                s.token_url, r.status_code, detail,
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
            logger.error("Not sending a Teams message for conversation %s to %s: %s. Nothing was sent.",
                         conversation_id, urlsplit(service_url).hostname, refusal)
            return None
        url = f"{service_url.rstrip('/')}/v3/conversations/{quote(conversation_id, safe='')}/activities"
        async with OutboundClient(self._policy(), use="teams") as client:
            for attempt in (1, 2):
                token = await self.token(client)
                if token is None:
                    logger.error("A Teams message for conversation %s was not sent (no BotFramework token).", conversation_id)
                    return None
                try:
                    r = await client.fetch("POST", url, json=activity, headers={"Authorization": f"Bearer {token}"},
                                           follow_redirects=False, max_bytes=MAX_CONNECTOR_ANSWER_BYTES,
                                           timeout=2 * self.settings.http_timeout)
                except (httpx.HTTPError, OutboundError, asyncio.TimeoutError) as error:
                    logger.error("Could not send a Teams message to %s: %s", url, _describe(error))
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
                logger.error("The Bot Connector refused a Teams message for conversation %s: HTTP %s %s",
                             conversation_id, r.status_code, r.content[:300].decode("utf-8", "replace"))
                return None
        return None


# ---------------------------------------------------------------------------------------------------- output
def card_action(button: Mapping[str, Any]) -> Dict[str, Any]:
    """A Rasa button as a Bot Framework card action."""
    payload = button.get("payload")
    title = str(button.get("title") or payload or "")[:256]
    url = button.get("url") or (payload if isinstance(payload, str) and re.match(r"^https?://", payload) else None)
    if url:
        return {"type": "openUrl", "title": title, "value": str(url)}
    payload = str(payload if payload is not None else title)
    # messageBack: the chat shows the title as the user's message, the bot receives the payload
    return {"type": "messageBack", "title": title, "text": payload, "displayText": title, "value": {"payload": payload}}


def hero_cards(text: str, buttons: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    actions = [card_action(b) for b in buttons if isinstance(b, Mapping)]
    chunks = [actions[i:i + MAX_CARD_BUTTONS] for i in range(0, len(actions), MAX_CARD_BUTTONS)] or [[]]
    cards = []
    for i, chunk in enumerate(chunks):
        content: Dict[str, Any] = {"buttons": chunk}
        if i == 0 and text:
            content["text"] = text
        cards.append({"contentType": "application/vnd.microsoft.card.hero", "content": content})
    return cards


class TeamsOutput(RasaBotFramework):
    """Replies into one Teams conversation (Rasa's output channel, sent through ``BotConnector``)."""

    def __init__(
        self,
        connector: BotConnector,
        conversation: Mapping[str, Any],
        bot: Optional[Mapping[str, Any]],
        service_url: str,
        reply_to_id: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> None:
        settings = connector.settings
        bot = dict(bot or {}) or {"id": f"28:{settings.app_id}"}
        super().__init__(settings.app_id or "", settings.app_password or "", dict(conversation), bot, service_url)
        self.connector = connector
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

    async def _get_headers(self) -> Optional[Dict[str, Any]]:  # Rasa's blocking token fetch: never used here
        return None

    async def send(self, message_data: Dict[str, Any]) -> None:
        await self.connector.post_activity(self.service_url, str(self.conversation.get("id") or ""), message_data)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        text = (text or "").strip()
        if text:
            await self.send(self.prepare_message(recipient_id, {"text": text, "textFormat": "markdown"}))

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any) -> None:
        message = {"attachmentLayout": "list", "attachments": hero_cards((text or "").strip(), buttons or [])}
        await self.send(self.prepare_message(recipient_id, message))


# ---------------------------------------------------------------------------------------------------- input
class RequestRejected(Exception):
    def __init__(self, status: int, reason: str, public: Optional[str] = None):
        super().__init__(reason)
        self.status, self.reason, self.public = status, reason, public or reason


def _text_of(activity: Mapping[str, Any]) -> str:
    """What the user said or clicked, without the bot's @mention and HTML markup."""
    text = activity.get("text") if isinstance(activity.get("text"), str) else ""
    bot_id = (activity.get("recipient") or {}).get("id") if isinstance(activity.get("recipient"), dict) else None
    for entity in activity.get("entities") or []:
        if (isinstance(entity, dict) and entity.get("type") == "mention" and isinstance(entity.get("text"), str)
                and isinstance(entity.get("mentioned"), dict) and entity["mentioned"].get("id") == bot_id):
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


def shared_files(activity: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(name, download URL) of the files attached to a message: Teams file download info
    (``content.downloadUrl``) or any attachment with a ``contentUrl``; cards and the HTML copy of the
    message Teams adds are not files."""
    found: List[Tuple[str, str]] = []
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
            found.append((name, url))
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
    return {"botframework": {k: v for k, v in reference.items() if v not in (None, {}, "")}}


def conversation_of(activity: Mapping[str, Any]) -> str:
    """The conversation id of a (checked) message activity: ``teams-<from.id>``."""
    return CONVERSATION_PREFIX + activity["from"]["id"]


def conversation_reference(activity: Mapping[str, Any]) -> Dict[str, Any]:
    """What a later push needs (``activity_metadata`` without the per-message activity id and locale)."""
    reference = dict(activity_metadata(activity)["botframework"])
    reference.pop("activityId", None)
    reference.pop("locale", None)
    return reference


class BotFrameworkInput(RasaBotFrameworkInput):
    """Teams / Bot Framework input channel (``/webhooks/botframework/webhook``) with hand-off routing."""

    @classmethod
    def name(cls) -> str:
        return "botframework"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "BotFrameworkInput":
        return cls(settings=BotFrameworkSettings.from_credentials(credentials))

    def __init__(
        self, app_id: Optional[str] = None, app_password: Optional[str] = None,
        settings: Optional[BotFrameworkSettings] = None,
    ) -> None:
        # Rasa's __init__ downloads the signing keys (blocking, no timeout): deliberately not called.
        self.settings = settings or BotFrameworkSettings.from_credentials({"app_id": app_id, "app_password": app_password})
        self.app_id = self.settings.app_id
        self.app_password = self.settings.app_password
        self.jwt_keys: Dict[str, Any] = {}
        self.keys = OpenIdKeys(self.settings)
        self.connector = BotConnector(self.settings)
        self._seen: "OrderedDict[Tuple[str, str], None]" = OrderedDict()
        if not self.settings.configured:
            logger.warning(
                "The Teams (Bot Framework) channel is enabled without an app id and password "
                "(MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD): its webhook answers 503 until they are set."
            )

    def _update_cached_jwk_keys(self) -> None:  # Rasa's blocking download: keys are fetched by ``self.keys``
        return None

    # ------------------------------------------------------------------ authentication
    async def authenticate(self, authorization: Optional[str]) -> Tuple[Dict[str, Any], SigningKey]:
        """The verified claims of the request's token; raises RequestRejected (401 / 503)."""
        if not authorization:
            raise RequestRejected(401, "no Authorization header")
        match = BEARER.match(authorization)
        if not match:
            raise RequestRejected(401, "the Authorization header is not a Bearer token")
        token = match.group(1)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise RequestRejected(401, f"malformed token ({_describe(error)})", "invalid token")
        if header.get("alg") != "RS256":
            raise RequestRejected(401, f"token algorithm {header.get('alg')!r} is not RS256", "invalid token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise RequestRejected(401, "token has no key id (kid)", "invalid token")
        try:
            key = await self.keys.get(kid)
        except SigningKeysUnavailable as error:
            raise RequestRejected(503, f"cannot verify tokens: signing keys unavailable ({error})",
                                  "cannot verify the token right now, try again later")
        if key is None:
            raise RequestRejected(401, f"token signed with an unknown key ({kid})", "invalid token")
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key=key.public_key,
                algorithms=["RS256"],
                audience=s.app_id,
                issuer=list(s.allowed_issuers),
                leeway=s.jwt_leeway,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_aud": True, "verify_iss": True},
            )
        except jwt.ExpiredSignatureError:
            raise RequestRejected(401, "token expired", "token expired")
        except jwt.PyJWTError as error:
            raise RequestRejected(401, f"token rejected ({_describe(error)})", "invalid token")
        except Exception as error:  # e.g. a key/crypto error: still the client's problem, never a 500
            raise RequestRejected(401, f"token could not be verified ({_describe(error)})", "invalid token")
        return claims, key

    @staticmethod
    def check_binding(activity: Mapping[str, Any], claims: Mapping[str, Any], key: SigningKey) -> None:
        """The token must be for this activity's service URL (a ``serviceurl`` claim is required: the
        connector token is only ever sent where Microsoft said the conversation lives) and channel."""
        claim = claims.get("serviceurl", claims.get("serviceUrl"))
        if not isinstance(claim, str) or not claim.strip():
            raise RequestRejected(401, "the token has no serviceurl claim", "invalid token")
        service_url = activity.get("serviceUrl")
        if not isinstance(service_url, str) or claim.strip().rstrip("/") != service_url.strip().rstrip("/"):
            raise RequestRejected(401, "the token's serviceurl claim does not match the activity's serviceUrl",
                                  "invalid token")
        channel_id = activity.get("channelId")
        if key.endorsements is not None and isinstance(channel_id, str) and channel_id not in key.endorsements:
            raise RequestRejected(401, f"the signing key is not endorsed for channel {channel_id!r}", "invalid token")

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
            raise RequestRejected(400, "the body is not JSON")
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
        if not isinstance(service_url, str) or urlsplit(service_url).scheme not in ("https", "http") \
                or not urlsplit(service_url).netloc:
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
        meta = activity_metadata(activity)["botframework"]
        return TeamsOutput(self.connector, activity["conversation"], activity.get("recipient"), activity["serviceUrl"],
                           reply_to_id=activity.get("id") if isinstance(activity.get("id"), str) else None,
                           tenant_id=meta.get("tenantId"))

    async def handle_request(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        try:
            if not self.settings.configured:
                raise RequestRejected(503, "not configured", "the Teams channel is not configured (MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD)")
            if len(request.body or b"") > MAX_BODY_BYTES:
                raise RequestRejected(413, "the body is too large")
            claims, key = await self.authenticate(request.headers.get("Authorization"))
            activity = self._parse(request.body or b"")
            self.check_binding(activity, claims, key)
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
                handled = await self._handle_files(activity, files, order, on_new_message)
            except Exception:  # never a 500 for a valid activity
                logger.exception("Checking a file shared in Teams failed.")
                handled = True
            if handled:
                return response.json({}, status=200)

        metadata = self.add_attachments_to_metadata(activity, self.get_metadata(request))
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
    async def _handle_files(self, activity: Dict[str, Any], files: List[Tuple[str, str]], order: Optional[str],
                            on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> bool:
        """Checks the shared files (or re-checks the kept one with the chosen date order) and replies.
        False: not ours, the message goes on to the bot / specialist as usual."""
        sender = activity["from"]["id"]
        if await file_replies.handed_off(on_new_message, conversation_of(activity)):
            if files and not _text_of(activity):
                activity["text"] = file_replies.shared_note([name for name, _ in files])  # for the specialist
            return False
        output = self.output_for(activity)
        region = file_replies.region_from_locale(activity.get("locale"))
        key = f"{activity['conversation']['id']}|{sender}"
        if order and not files:
            pending = self._pending_files().take(key)
            if pending is None:
                await output.send_text_message(sender, file_replies.EXPIRED)
                return True
            name, data, extra = pending
            await self._reply_with_check(output, sender, key, data, name, order, extra.get("region", region))
            return True
        for name, url in files[: file_replies.MAX_FILES_PER_MESSAGE]:
            try:
                data = await self._download(url, activity["serviceUrl"])
            except FileRefused as refused:
                await output.send_text_message(sender, str(refused))
                continue
            await self._reply_with_check(output, sender, key, data, name, None, region)
        if len(files) > file_replies.MAX_FILES_PER_MESSAGE:
            await output.send_text_message(
                sender, file_replies.more_files_text(len(files) - file_replies.MAX_FILES_PER_MESSAGE))
        return True

    def _pending_files(self) -> file_replies.PendingFiles:
        pending = getattr(self, "_pending", None)
        if pending is None:
            pending = self._pending = file_replies.PendingFiles()
        return pending

    async def _reply_with_check(self, output: "TeamsOutput", recipient: str, key: str, data: bytes, name: str,
                                order: Optional[str], region: str) -> None:
        reply = await file_replies.check_file(data, name, date_order=order, region=region)
        if reply.buttons:
            self._pending_files().put(key, name, data, region=region)
            await output.send_text_with_buttons(recipient, reply.text, reply.buttons)
            return
        attachments, too_big = [], []
        for converted in reply.converted:
            if len(converted.content) <= MAX_INLINE_ATTACHMENT_BYTES:
                attachments.append({
                    "contentType": "text/csv",
                    "contentUrl": "data:text/csv;base64," + base64.b64encode(converted.content).decode("ascii"),
                    "name": converted.filename,
                })
            else:
                too_big.append(converted.filename)
        text = reply.text
        if too_big:
            text += ("\n" + ", ".join(too_big) + (" is" if len(too_big) == 1 else " are")
                     + " too large to attach in Teams; convert the file on our website's upload page to download it.")
        message: Dict[str, Any] = {"text": text, "textFormat": "markdown"}
        if attachments:
            message["attachments"] = attachments
        await output.send(output.prepare_message(recipient, message))

    async def _download(self, url: str, service_url: str) -> bytes:
        """The attachment's bytes. The connector token goes to the activity's serviceUrl host only (when
        that is an allowed service host); any other URL is fetched without credentials. Every hop goes
        through the outbound policy (public addresses on 80/443, resolved once, every redirect checked
        again), with a timeout and the size cap."""
        limit = self.settings.max_file_bytes or file_replies.max_file_bytes()
        try:
            with file_replies.quiet_download():
                return await self._fetch(url, service_url, limit)
        except FileRefused:
            raise
        except Exception as error:
            logger.warning("Downloading a Teams attachment failed: %s.", type(error).__name__)
            raise FileRefused(file_replies.UNREACHABLE)

    async def _fetch(self, url: str, service_url: str, limit: int) -> bytes:
        timeout = min(self.settings.http_timeout * 3, file_replies.DOWNLOAD_TIMEOUT)
        policy = self.settings.outbound_policy().replace(
            max_redirects=file_replies.MAX_REDIRECTS, connect_timeout=timeout, read_timeout=timeout)
        token_allowed = self.connector.may_send_token_to(service_url) is None
        async with OutboundClient(policy, use="teams") as client:

            async def auth_for(hop: str) -> Optional[Dict[str, str]]:
                if not (token_allowed and file_replies.same_origin(hop, service_url)):
                    return None
                token = await self.connector.token(client)
                if token is None:
                    raise FileRefused(file_replies.UNREACHABLE)
                return {"Authorization": f"Bearer {token}"}

            async def download() -> bytes:
                async with client.stream("GET", url, auth_for=auth_for) as streamed:
                    r = streamed.response
                    if r.status_code != 200:
                        logger.warning("Downloading a Teams attachment from %s failed: HTTP %s.",
                                       urlsplit(streamed.url).hostname, r.status_code)
                        raise FileRefused(file_replies.UNREACHABLE)
                    return await file_replies.read_capped(r, limit)

            try:
                return await asyncio.wait_for(download(), timeout=file_replies.DOWNLOAD_TIMEOUT)
            except OutboundRedirectLimit:
                logger.warning("Downloading a Teams attachment failed: too many redirects.")
                raise FileRefused(file_replies.UNREACHABLE)
            except OutboundRefused:  # logged by bot.outbound (host and reason)
                raise FileRefused(file_replies.NOT_A_FILE)

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
            logger.warning("No Teams conversation is known for %s: the hand-off message stays in the transcript only.",
                           conversation_id)
            return False
        conversation = ref.get("conversation") if isinstance(ref.get("conversation"), Mapping) else {}
        service_url = ref.get("serviceUrl")
        if not isinstance(service_url, str) or not conversation.get("id"):
            logger.warning("The Teams conversation of %s is incomplete (no serviceUrl / conversation id).", conversation_id)
            return False
        output = TeamsOutput(self.connector, conversation, ref.get("bot") or None, service_url,
                             tenant_id=ref.get("tenantId"))
        recipient = (ref.get("user") or {}).get("id") if isinstance(ref.get("user"), Mapping) else None
        recipient = recipient or conversation_id.removeprefix(CONVERSATION_PREFIX)
        if buttons:
            await output.send_text_with_buttons(recipient, text, buttons)
        else:
            await output.send_text_message(recipient, text)
        return True
