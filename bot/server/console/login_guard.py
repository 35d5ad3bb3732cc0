"""Sign-in attempt limits of the agent console: per account and per client address, with lock-outs.

* account: at most ``LOGIN_MAX_FAILURES`` attempts (default 5) within ``LOGIN_FAILURE_WINDOW_SECONDS``
  (900) without a success. Each attempt is counted *before* the password is checked, atomically, so
  concurrent guesses cannot get past the budget; a successful sign-in resets it. When it runs out the
  account is locked for ``LOGIN_LOCKOUT_SECONDS`` (900) whatever address the next try comes from;
* client address (the real client, see ``bot.server.channels.proxies``): ``LOGIN_ADDRESS_MAX_FAILURES``
  (20) failed attempts within the window lock that address out for the same time, whichever
  accounts it tries. Failures are counted after the check, so concurrent requests can overshoot by
  at most the password pool's capacity;
* usernames are counted whether they exist or not, and the answers are the same, so the limits tell
  an attacker nothing about which accounts exist.

Counts live in the ``limits`` library's storage: ``RATE_LIMIT_STORAGE_URL`` if set (any ``limits``
URI, or ``sqlite:///path`` for the processes of one machine, ``bot/ratelimit_sqlite.py``), else Redis
when ``REDIS_HOST`` is set (``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_DB``, the
production topology's lock-store settings) so all replicas share them, else this process's memory.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import quote

import limits
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bot.ratelimit_sqlite import storage_from_url

logger = logging.getLogger(__name__)


class GuardUnavailable(Exception):
    """The counter storage cannot be reached: refuse sign-ins rather than allow unlimited guessing."""


@dataclass(frozen=True)
class GuardSettings:
    account_max_failures: int = 5
    address_max_failures: int = 20
    failure_window: int = 900
    lockout: int = 900

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "GuardSettings":
        env = os.environ if env is None else env

        def number(name: str, default: int) -> int:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, not {raw!r}.") from None
            if value < 1:
                raise ValueError(f"{name} must be at least 1.")
            return value

        return cls(
            account_max_failures=number("LOGIN_MAX_FAILURES", cls.account_max_failures),
            address_max_failures=number("LOGIN_ADDRESS_MAX_FAILURES", cls.address_max_failures),
            failure_window=number("LOGIN_FAILURE_WINDOW_SECONDS", cls.failure_window),
            lockout=number("LOGIN_LOCKOUT_SECONDS", cls.lockout),
        )


def storage_url(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    explicit = (env.get("RATE_LIMIT_STORAGE_URL") or "").strip()
    if explicit:
        return explicit
    host = (env.get("REDIS_HOST") or "").strip()
    if host:
        password = env.get("REDIS_PASSWORD") or ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{host}:{env.get('REDIS_PORT') or 6379}/{env.get('REDIS_DB') or 1}"
    return "memory://"


def _safe(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


class LoginGuard:
    def __init__(self, settings: Optional[GuardSettings] = None, url: Optional[str] = None):
        self.settings = settings or GuardSettings()
        self.url = url or "memory://"
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if self.url.startswith(("redis", "rediss")) else {}
        self.storage = storage_from_url(self.url, **options)
        self._counts = MovingWindowRateLimiter(self.storage)
        self._locks = FixedWindowRateLimiter(self.storage)
        s = self.settings
        self._account = limits.RateLimitItemPerSecond(
            s.account_max_failures, s.failure_window, namespace="bankfeed-login-account"
        )
        self._address = limits.RateLimitItemPerSecond(
            s.address_max_failures, s.failure_window, namespace="bankfeed-login-address"
        )
        self._lock = limits.RateLimitItemPerSecond(1, s.lockout, namespace="bankfeed-login-lock")

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "LoginGuard":
        guard = cls(GuardSettings.from_env(env), storage_url(env))
        logger.info("Sign-in limits: %s, counted in %s.", guard.settings, _safe(guard.url))
        return guard

    # ------------------------------------------------------------------ helpers
    def _wait(self, kind: str, key: str) -> Optional[int]:
        if self._locks.test(self._lock, kind, key):
            return None
        reset, _ = self._locks.get_window_stats(self._lock, kind, key)
        # The storages report the lock's end in whole seconds, cut short (limits' memory storage, ours on
        # SQLite): the real end is before reset + 1. Retry-After must not send the person back too early
        # (measured: a retry at the advertised time was refused again), and never exceeds the lock-out.
        return max(1, min(self.settings.lockout, math.ceil(reset + 1 - time.time())))

    def _lock_out(self, kind: str, key: str, counter: "limits.RateLimitItem") -> None:
        self._locks.hit(self._lock, kind, key)
        self._counts.clear(counter, kind, key)  # a fresh budget once the lock-out is over
        logger.warning("Sign-in locked for %ss: too many attempts for one %s.", self.settings.lockout, kind)

    def _guarded(self, fn, *args):  # type: ignore[no-untyped-def]
        try:
            return fn(*args)
        except Exception as exc:
            logger.error("Sign-in limit storage %s unavailable: %s", _safe(self.url), exc)
            raise GuardUnavailable() from None

    # ------------------------------------------------------------------ the attempt
    def locked_for(self, account: str, address: str) -> Optional[int]:
        """Seconds until this account or address may try again, or None."""
        return self._guarded(self._locked_for, account, address)

    def _locked_for(self, account: str, address: str) -> Optional[int]:
        waits = [w for w in (self._wait("account", account), self._wait("address", address)) if w]
        return max(waits) if waits else None

    def begin(self, account: str, address: str) -> Optional[int]:
        """Counts an attempt before the password is checked: None to go ahead, else seconds to wait."""
        return self._guarded(self._begin, account, address)

    def _begin(self, account: str, address: str) -> Optional[int]:
        wait = self._locked_for(account, address)
        if wait:
            return wait
        if not self._counts.hit(self._account, "account", account):
            self._lock_out("account", account, self._account)
            return self.settings.lockout
        return None

    def failed(self, account: str, address: str) -> None:
        self._guarded(self._failed, account, address)

    def _failed(self, account: str, address: str) -> None:
        if not self._counts.test(self._account, "account", account):
            self._lock_out("account", account, self._account)
        if not self._counts.hit(self._address, "address", address) or not self._counts.test(self._address, "address", address):
            self._lock_out("address", address, self._address)

    def succeeded(self, account: str) -> None:
        self._guarded(self._counts.clear, self._account, "account", account)
