"""Which Bot Framework requests are believed: the JWT in ``Authorization``, checked strictly.

* **Strict token validation** (:meth:`TokenVerifier.authenticate`). Rasa decodes with the *token's
  own* ``alg`` header, checks only the signature, audience and expiry, lets a missing ``kid`` or a
  key-refresh ``ConnectionError`` escape as a 500, and never looks at the issuer or the
  ``serviceurl`` claim, so a valid token could be replayed with another ``serviceUrl`` and the bot
  would post its connector token there. Here: RS256 only, ``kid`` required, audience = app id, issuer
  in ``allowed_issuers``, ``exp`` required (small leeway), and (:meth:`TokenVerifier.check_binding`)
  a ``serviceurl`` claim required and equal to the activity's ``serviceUrl``, and the key's
  ``endorsements`` (when published) must include the activity's ``channelId``. Anything else:
  :class:`RequestRejected` 401, and nothing is processed.
* **No network at start-up** (:class:`OpenIdKeys`). Rasa's ``BotFrameworkInput.__init__`` downloads
  Microsoft's OpenID keys (blocking ``requests``, no timeout): with no network the server does not
  start. Here the keys are fetched lazily on the first request (async, with a timeout, through the
  outbound policy), cached, refreshed daily and when a token names an unknown key id (rate-limited),
  with a back-off after failures. While they cannot be fetched and none are cached, requests get
  503 (``SigningKeysUnavailable``), never a crash.

Set-up: docs/teams.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import jwt
from jwt.algorithms import RSAAlgorithm

from bot.outbound import OutboundClient
from bot.server.channels.teams.settings import MAX_CONNECTOR_ANSWER_BYTES, BotFrameworkSettings, LoopLock, describe

logger = logging.getLogger(__name__)

BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


class RequestRejected(Exception):
    """A request that is not processed: ``status`` for the answer, ``reason`` for the log, ``public``
    for the body."""

    def __init__(self, status: int, reason: str, public: Optional[str] = None):
        super().__init__(reason)
        self.status, self.reason, self.public = status, reason, public or reason


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
        self._lock = LoopLock()

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
                self._last_error = describe(error)
                self._generation += 1
                logger.warning(
                    "Could not fetch the Bot Framework signing keys (%s): %s%s",
                    self.settings.openid_metadata_url,
                    self._last_error,
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
            r = await client.fetch(
                "GET", self.settings.openid_metadata_url, max_bytes=MAX_CONNECTOR_ANSWER_BYTES, timeout=timeout
            )
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
                jwk["kid"],
                public_key,
                tuple(str(e) for e in endorsements) if isinstance(endorsements, list) else None,
            )
        if not keys:
            raise ValueError("the JWKS holds no RSA signing keys")
        return keys


# ---------------------------------------------------------------------------------------------------- tokens
class TokenVerifier:
    """Checks the Bot Framework's token on each request, with Microsoft's signing keys (``keys``)."""

    def __init__(self, settings: BotFrameworkSettings):
        self.settings = settings
        self.keys = OpenIdKeys(settings)

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
            raise RequestRejected(401, f"malformed token ({describe(error)})", "invalid token") from None
        if header.get("alg") != "RS256":
            raise RequestRejected(401, f"token algorithm {header.get('alg')!r} is not RS256", "invalid token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise RequestRejected(401, "token has no key id (kid)", "invalid token")
        try:
            key = await self.keys.get(kid)
        except SigningKeysUnavailable as error:
            raise RequestRejected(
                503,
                f"cannot verify tokens: signing keys unavailable ({error})",
                "cannot verify the token right now, try again later",
            ) from None
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
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise RequestRejected(401, "token expired", "token expired") from None
        except jwt.PyJWTError as error:
            raise RequestRejected(401, f"token rejected ({describe(error)})", "invalid token") from None
        except Exception as error:  # e.g. a key/crypto error: still the client's problem, never a 500
            raise RequestRejected(401, f"token could not be verified ({describe(error)})", "invalid token") from None
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
            raise RequestRejected(401, "the token's serviceurl claim does not match the activity's serviceUrl", "invalid token")
        channel_id = activity.get("channelId")
        if key.endorsements is not None and isinstance(channel_id, str) and channel_id not in key.endorsements:
            raise RequestRejected(401, f"the signing key is not endorsed for channel {channel_id!r}", "invalid token")
