"""Per-client rate limits, counted by the ``limits`` library (moving windows; a fixed window for bytes).

Named limits (default, then the setting that changes it):

======================================  ========================  ==========================================
name                                    default                   what is counted
======================================  ========================  ==========================================
``chat_per_sender``                     ``15/10seconds;60/minute``  messages of one conversation (REST, widget)
``chat_per_address``                    ``300/minute``            messages from one client address
``sessions_per_address``                ``30/minute``             new conversations from one client address
``uploads_per_address``                 ``30/hour``               ``POST /upload/analyse`` per client address
``upload_bytes_per_address``            ``209715200/hour``        bytes uploaded per client address (200 MB)
``outage_reports_per_address``          ``3/hour``                outage reports counted per client address
======================================  ========================  ==========================================

Each can be set in ``bankfeed.yml`` (``rate_limits: {<name>: "<limits>"}``) or, taking precedence, in
the environment as ``RATE_LIMIT_<NAME>`` (``RATE_LIMIT_CHAT_PER_ADDRESS=600/minute``); a value is one
or more ``limits`` strings separated by ``;``, or ``off``. ``RATE_LIMITS=off`` turns every limit off
(load tests only).

Where the counts live: ``RATE_LIMIT_STORAGE_URL`` (or ``rate_limits.storage_url``):

==============================  ========================================  ===============================================
URL                             shared by                                 one hit / one chat message (3 window hits)
==============================  ========================================  ===============================================
``memory://`` (default)         this process only: one Rasa process       inline: 1-30 us / 0.06-0.16 ms
``sqlite:///var/ratelimits.db`` every process of this machine             a write transaction, in a worker thread:
(``bot/ratelimit_sqlite.py``)   (``make run WORKERS=2``)                  66-126 us / 0.23-0.40 ms
``redis://[:pw@]host:port/db``  every replica (the production topology)   a round trip, in a worker thread:
                                                                          181-568 us / 0.73-0.96 ms (~80 us / 0.1-0.4
                                                                          ms measured earlier, idle machine)
==============================  ========================================  ===============================================

(measured with ``python -m bench.ratelimit_storage`` on this 2-core machine at a load average of 6,
2026-12-02, called inline; a message is three window hits: its address, its conversation's two
windows.) With several processes the counts must be shared, or each process allows the whole limit. If SQLite or Redis does not answer (a busy or unusable file, Redis
down), this process counts in memory for ``FALLBACK_SECONDS`` and then tries the storage again
(logged): limits stay in force per process and nothing is refused because the counter is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from limits import RateLimitItem, parse_many
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bot.ratelimit_sqlite import storage_from_url

logger = logging.getLogger(__name__)

DEFAULT_LIMITS: Dict[str, str] = {
    "chat_per_sender": "15/10seconds;60/minute",
    "chat_per_address": "300/minute",
    "sessions_per_address": "30/minute",
    "uploads_per_address": "30/hour",
    "upload_bytes_per_address": "209715200/hour",
    "outage_reports_per_address": "3/hour",
}
# counted with a fixed window (one counter incremented by the cost) instead of a moving window,
# which keeps one entry per unit: bytes would be millions of entries
FIXED_WINDOW = {"upload_bytes_per_address"}
FALLBACK_SECONDS = 10.0
KEY_PREFIX = "bankfeed"
OFF = ("off", "none", "0", "false", "no")

# What people see when they are over a limit (never our servers' internals).
SLOW_DOWN = "You're sending messages faster than I can read them. Please wait {seconds} and send that message again."
UPLOADS_SLOW_DOWN = "That's a lot of uploads in a short time. Please wait {seconds} and try that file again."


def wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: str = ""
    retry_after: int = 0  # whole seconds, at least 1 when refused

    def message(self, template: str = SLOW_DOWN) -> str:
        return template.format(seconds=wait_text(self.retry_after))


ALLOWED = Decision(True)


def parse_limits(value: str, name: str = "rate limit") -> Tuple[RateLimitItem, ...]:
    """``"15/10seconds;60/minute"`` -> limit items; ``off`` -> (); ValueError naming a bad one."""
    value = str(value).strip()
    if value.lower() in OFF:
        return ()
    try:
        items = tuple(parse_many(value))
    except ValueError as exc:
        raise ValueError(f"{name}: {value!r} is not a rate limit like '60/minute' ({exc})")
    if not items:
        raise ValueError(f"{name}: {value!r} is not a rate limit like '60/minute'")
    return items


def configured_limits(
    settings: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None
) -> Dict[str, Tuple[RateLimitItem, ...]]:
    """Every named limit: the default, then ``bankfeed.yml``'s ``rate_limits``, then the environment."""
    env = os.environ if env is None else env
    settings = dict(settings or {})
    unknown = set(settings) - set(DEFAULT_LIMITS) - {"storage_url"}
    if unknown:
        raise ValueError(f"unknown rate_limits settings: {', '.join(sorted(unknown))}")
    all_off = str(env.get("RATE_LIMITS", "")).strip().lower() in OFF
    limits: Dict[str, Tuple[RateLimitItem, ...]] = {}
    for name, default in DEFAULT_LIMITS.items():
        value = env.get(f"RATE_LIMIT_{name.upper()}") or settings.get(name) or default
        limits[name] = () if all_off else parse_limits(value, name)
    return limits


def storage_url(settings: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return (env.get("RATE_LIMIT_STORAGE_URL") or (settings or {}).get("storage_url") or "memory://").strip()


class RateLimiter:
    """Checks named limits for one or more identifiers (a sender id, a client address)."""

    def __init__(self, limits: Mapping[str, Sequence[RateLimitItem]], url: str = "memory://", clock: Any = time.time):
        self.limits = {name: tuple(items) for name, items in limits.items()}
        self.url = url
        self.clock = clock
        self.remote = not url.startswith("memory://")
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if url.startswith(("redis", "rediss")) else {}
        # the strategies hold their storage by weak reference only: keep the storages here
        self._storages = [storage_from_url(url, **options)]
        self._primary = self._strategies(self._storages[0])
        if self.remote:
            self._storages.append(storage_from_url("memory://"))
        self._memory = self._strategies(self._storages[-1])
        self._fallback_until = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _strategies(storage: Any) -> Tuple[MovingWindowRateLimiter, FixedWindowRateLimiter]:
        return MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)

    @classmethod
    def from_settings(
        cls, settings: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None
    ) -> "RateLimiter":
        if settings is None:
            settings = _settings_file_section()
        return cls(configured_limits(settings, env), storage_url(settings, env))

    def __repr__(self) -> str:
        return f"RateLimiter({self.url.split('@')[-1]!r})"  # never the password

    def enabled(self, name: str) -> bool:
        return bool(self.limits.get(name))

    # ------------------------------------------------------------------ checks
    def hit(self, name: str, *identifiers: str, cost: int = 1) -> Decision:
        """Counts ``cost`` against limit ``name`` for ``identifiers``; refused when over (not counted then)."""
        items = self.limits.get(name)
        if items is None:
            raise KeyError(f"unknown rate limit {name!r}")
        if not items or cost <= 0:
            return ALLOWED
        keys = (KEY_PREFIX, name) + tuple(str(i) for i in identifiers)
        if self.remote and self.clock() >= self._fallback_until:
            try:
                return self._hit(self._primary, name, items, keys, cost)
            except Exception as exc:
                with self._lock:
                    self._fallback_until = self.clock() + FALLBACK_SECONDS
                logger.warning(
                    "Rate-limit storage unavailable (%s); counting in this process for %ss.", type(exc).__name__, FALLBACK_SECONDS
                )
        return self._hit(self._memory, name, items, keys, cost)

    def _hit(
        self, strategies: Tuple[Any, Any], name: str, items: Sequence[RateLimitItem], keys: Tuple[str, ...], cost: int
    ) -> Decision:
        strategy = strategies[1] if name in FIXED_WINDOW else strategies[0]
        for item in items:
            if name in FIXED_WINDOW:
                # one atomic increment, given back when it went over the budget: a refused request
                # costs nothing, and two processes cannot both take the last of the budget (looking
                # before counting let them: measured with SQLite, tests/test_ratelimit_sqlite.py). While
                # it is being given back, a request at the same instant may be refused too (never let in).
                if not strategy.hit(item, *keys, cost=cost):
                    strategy.storage().incr(item.key_for(*keys), item.get_expiry(), amount=-cost)
                    reset, _ = strategy.get_window_stats(item, *keys)
                    return self._refused(name, reset)
            elif not strategy.hit(item, *keys, cost=cost):
                reset, _ = strategy.get_window_stats(item, *keys)
                return self._refused(name, reset)
        return ALLOWED

    def _refused(self, name: str, reset: float) -> Decision:
        return Decision(False, name, max(1, math.ceil(reset - self.clock())))

    async def check(self, name: str, *identifiers: str, cost: int = 1) -> Decision:
        """``hit`` for the event loop: a remote storage is called in a worker thread."""
        if not self.limits.get(name):
            return ALLOWED
        if self.remote:
            return await asyncio.to_thread(self.hit, name, *identifiers, cost=cost)
        return self.hit(name, *identifiers, cost=cost)

    async def check_all(self, checks: Sequence[Tuple[str, Sequence[str]]]) -> Decision:
        """The first refusal among ``(name, identifiers)`` checks, in order, else allowed."""
        for name, identifiers in checks:
            decision = await self.check(name, *identifiers)
            if not decision.allowed:
                return decision
        return ALLOWED


def _settings_file_section() -> Dict[str, Any]:
    try:
        from bot.settings import load_settings

        return dict(load_settings().get("rate_limits") or {})
    except FileNotFoundError:
        return {}


def chat_checks(sender: Optional[str], address: Optional[str]) -> list:
    """The checks of one chat message: its client address, then its conversation."""
    checks = []
    if address:
        checks.append(("chat_per_address", [address]))
    if sender:
        checks.append(("chat_per_sender", [sender]))
    return checks


def too_many_body(decision: Decision, template: str = SLOW_DOWN) -> Dict[str, Any]:
    """The JSON body of a 429: what to do, and when."""
    return {"error": decision.message(template), "retry_after": decision.retry_after, "limit": decision.limit}


def too_many_headers(decision: Decision) -> Dict[str, str]:
    return {"Retry-After": str(decision.retry_after)}
