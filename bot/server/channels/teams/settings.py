"""The Teams (Bot Framework) channel's settings, and the few pieces its parts share.

:class:`BotFrameworkSettings` is read from the channel's credentials.yml section, each key with an
environment fallback: ``app_id`` (``MICROSOFT_APP_ID``), ``app_password`` (``MICROSOFT_APP_PASSWORD``),
``tenant_id`` (``MICROSOFT_APP_TENANT_ID``, single-tenant bots: the token then comes from the tenant's
``https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token``), and for tests or sovereign clouds
``openid_metadata_url``, ``token_url``, ``token_scope``, ``allowed_issuers``, ``service_url_hosts``
(``BOTFRAMEWORK_SERVICE_URL_HOSTS``, comma-separated: the only hosts the connector token may go to),
``max_file_bytes``, plus tuning knobs ``http_timeout``, ``jwt_leeway``, ``jwks_cache_seconds``,
``jwks_retry_seconds``, ``jwks_refresh_min_seconds``, ``token_retry_seconds``. Without an app id
and password the channel still loads (the server starts) but its webhook answers 503.

Set-up: docs/teams.md.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import quote

from bot.outbound import OutboundPolicy
from bot.server.channels import file_replies

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
#: Our conversation ids are ``teams-<from.id>`` (namespaced: no id of another channel names one).
CONVERSATION_PREFIX = "teams-"


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


def describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class LoopLock:
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
