"""Bank-site availability prober for QuickBooks Online bank-feed Error 102.

Error 102 means "the bank's website is not answering".  Before the assistant
tells a customer that their bank is down, it checks the bank's public site:

    prober = SiteProber(ProbeSettings())
    result = await prober.check("chase", "https://www.chase.com/")
    result.status   # "up" | "maintenance" | "down" | "slow" | "unknown"
    result.reason   # machine-readable detail, see ``ProbeResult``

Guarantees of :meth:`SiteProber.check`:

* it never raises (only the caller's own ``asyncio.CancelledError`` propagates);
* it returns within ``ProbeSettings.budget`` seconds;
* a bank that merely hangs, or a failure that could be caused by *our* network
  (checked against ``canary_urls``), is reported as ``"unknown"``, never ``"down"``;
* results are cached per key for ``cache_ttl`` seconds and concurrent checks of
  the same key share a single HTTP request;
* every request (the bank's URL, each redirect hop, the canaries) goes through
  ``bot.outbound`` under ``ProbeSettings.outbound``: http(s) on ports 80/443 to
  public addresses only, resolved once and connected to as checked. A URL the
  policy refuses is never contacted: the result is ``"unknown"`` with reason
  ``"not_allowed"`` (and says nothing about the target's state).

Plain Python + httpx; deliberately no Rasa imports.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import errno
import html
import logging
import math
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Literal, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import httpx

from bot.outbound import OutboundClient, OutboundDNSError, OutboundPolicy, OutboundRedirectLimit, OutboundRefused, Resolver

logger = logging.getLogger("bot.banks.site_prober")

SiteStatus = Literal["up", "maintenance", "down", "slow", "unknown"]
SITE_STATUSES: Tuple[str, ...] = ("up", "maintenance", "down", "slow", "unknown")

_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# Wording that marks a maintenance / outage page.  Matched case-insensitively on
# the HTML-unescaped, whitespace-collapsed first ``max_body_bytes`` of the body.
_MAINTENANCE_RE = re.compile(
    r"scheduled\s+maintenance"
    r"|planned\s+maintenance"
    r"|under\s+maintenance"
    r"|undergoing\s+(?:scheduled\s+|planned\s+|routine\s+)?maintenance"
    r"|down\s+for\s+(?:\w+\s+)?maintenance"
    r"|(?:currently|temporarily)\s+(?:down\s+for|undergoing|in)\s+maintenance"
    r"|maintenance\s+(?:window|mode|in\s+progress)"
    r"|performing\s+(?:scheduled\s+|routine\s+)?maintenance"
    r"|temporarily\s+unavailable"
    r"|we(?:'|\u2019|\s+wi)ll\s+be\s+(?:right\s+)?back",
    re.IGNORECASE,
)

# Network-level failures after which the canary decides between "down" and
# "unknown/no_outbound_connectivity".  Timeouts are never "down".
_DOWN_REASONS = frozenset(
    {"dns_failure", "connection_refused", "tls_error", "connect_error", "connection_reset", "protocol_error", "network_error"}
)

# Refusals whose cause is a malformed address rather than a forbidden destination.
_INVALID_URL_REASONS = frozenset({"bad_url", "scheme"})


# --------------------------------------------------------------------------- settings


def _positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"probe setting {name!r} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"probe setting {name!r} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"probe setting {name!r} must be an integer >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ProbeSettings:
    connect_timeout: float = 2.0
    read_timeout: float = 2.5
    budget: float = 3.0  # hard cap on how long check() may take for the caller
    slow_threshold: float = 1.5  # an answer slower than this (seconds) is "slow" (if otherwise up)
    cache_ttl: float = 60.0  # seconds a result is reused per bank key (0 disables the cache)
    max_redirects: int = 5
    max_body_bytes: int = 65536  # read at most this much of the body to look for maintenance wording
    user_agent: str = "QBO-BankFeed-Assistant/1.0 (bank site availability check)"
    canary_urls: Tuple[str, ...] = ("https://www.google.com/generate_204", "https://www.cloudflare.com/")
    verify_tls: bool = True
    # Which destinations may be contacted (bot/outbound.py); from the ``outbound`` settings (use ``bank_sites``).
    outbound: OutboundPolicy = OutboundPolicy()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("connect_timeout", "read_timeout", "budget", "slow_threshold"):
            set_(self, name, _positive_number(name, getattr(self, name)))
        set_(self, "cache_ttl", _positive_number("cache_ttl", self.cache_ttl, allow_zero=True))
        set_(self, "max_redirects", _non_negative_int("max_redirects", self.max_redirects))
        set_(self, "max_body_bytes", _non_negative_int("max_body_bytes", self.max_body_bytes))
        if not isinstance(self.user_agent, str) or not self.user_agent.strip():
            raise ValueError("probe setting 'user_agent' must be a non-empty string")
        urls = self.canary_urls
        if isinstance(urls, (str, bytes)) or not isinstance(urls, (list, tuple)):
            raise ValueError("probe setting 'canary_urls' must be a list of URL strings")
        if not all(isinstance(u, str) and u.strip() for u in urls):
            raise ValueError("probe setting 'canary_urls' must contain only non-empty strings")
        set_(self, "canary_urls", tuple(u.strip() for u in urls))
        if not isinstance(self.verify_tls, bool):
            raise ValueError("probe setting 'verify_tls' must be true or false")
        if isinstance(self.outbound, Mapping):
            set_(self, "outbound", OutboundPolicy.from_mapping(self.outbound))
        if not isinstance(self.outbound, OutboundPolicy):
            raise ValueError("probe setting 'outbound' must be an outbound policy")

    def policy(self) -> OutboundPolicy:
        """The outbound policy with this check's own limits (timeouts, redirects, body size)."""
        return self.outbound.replace(
            max_redirects=self.max_redirects,
            max_bytes=self.max_body_bytes,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            total_timeout=self.budget,
            resolve_timeout=min(self.outbound.resolve_timeout, self.connect_timeout),
        )

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "ProbeSettings":
        """Build settings from a (YAML-loaded) mapping.

        ``None`` / empty mapping -> defaults.  Unknown keys or bad values raise
        ``ValueError``; lists become tuples.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"probe settings must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(repr(k) if not isinstance(k, str) else k for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown probe setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one bank-site check.

    ``reason`` values: "ok", "slow_response", "maintenance_page", "retry_after",
    "http_<code>" (e.g. "http_503", "http_500"; 4xx such as "http_403" come with
    status "up" because the server is answering), "dns_failure",
    "connection_refused", "tls_error", "connect_error", "connection_reset",
    "protocol_error", "network_error", "timeout", "no_outbound_connectivity",
    "invalid_url", "not_allowed" (the outbound policy refuses the address or a
    redirect: nothing was sent there), "too_many_redirects", "cancelled",
    "internal_error".
    """

    status: SiteStatus
    url: str
    reason: str
    http_status: Optional[int]
    elapsed_ms: int
    checked_at: float  # time.time() of the probe (kept on cached copies)
    retry_after: Optional[str] = None
    final_url: Optional[str] = None  # after redirects; query string and credentials stripped
    from_cache: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeResult":
        """Inverse of :meth:`to_dict` (unknown keys are ignored, e.g. from newer versions)."""
        if not isinstance(d, Mapping):
            raise ValueError("ProbeResult.from_dict expects a mapping")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("status", "url", "reason", "http_status", "elapsed_ms", "checked_at") if n not in d]
        if missing:
            raise ValueError(f"ProbeResult.from_dict: missing {', '.join(missing)}")
        if d["status"] not in SITE_STATUSES:
            raise ValueError(f"ProbeResult.from_dict: invalid status {d['status']!r}")
        kw = {k: v for k, v in d.items() if k in names}
        kw["http_status"] = None if kw["http_status"] is None else int(kw["http_status"])
        kw["elapsed_ms"] = int(kw["elapsed_ms"])
        kw["checked_at"] = float(kw["checked_at"])
        kw["from_cache"] = bool(kw.get("from_cache", False))
        return cls(**kw)


# --------------------------------------------------------------------------- helpers


def _iter_exc_chain(exc: BaseException) -> Iterator[BaseException]:
    """Walk __cause__/__context__ and ExceptionGroup members (anyio wraps refused connects)."""
    stack = [exc]
    seen = set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.append(e.__cause__)
        stack.append(e.__context__)
        stack.extend(getattr(e, "exceptions", None) or ())


def _network_reason(exc: BaseException) -> str:
    chain = list(_iter_exc_chain(exc))
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "dns_failure"
    if any(isinstance(e, (ssl.SSLError, ssl.CertificateError)) for e in chain):
        return "tls_error"
    if any(isinstance(e, ConnectionRefusedError) or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED) for e in chain):
        return "connection_refused"
    text = " ".join(str(e) for e in chain).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "dns_failure"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "tls_error"
    if "connection refused" in text:
        return "connection_refused"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, httpx.ReadError):
        return "connection_reset"
    return "network_error"


def _parse_url(url: Any) -> Optional[str]:
    """The URL to check (a missing scheme means https://), or None when it is not a plausible URL.
    The strict checks are the outbound policy's (bot/outbound.py)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    if "://" not in url:
        url = "https://" + url
    return url


def _strip_url(url: str) -> str:
    """scheme://host[:port]/path - no credentials, query string or fragment."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except Exception:
        return "<unparseable url>"


def _host_of(url: str) -> str:
    try:
        return urlsplit(url if "://" in url else "https://" + url).hostname or "-"
    except Exception:
        return "-"


def _decode_body(body: bytes, charset: Optional[str]) -> str:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    text = body.decode(encoding, errors="replace")
    return re.sub(r"\s+", " ", html.unescape(text))


def has_maintenance_wording(text: str) -> bool:
    return bool(_MAINTENANCE_RE.search(text))


# --------------------------------------------------------------------------- prober


class SiteProber:
    """Checks whether a bank's web site answers.  One instance per process is enough.

    The instance owns one lazily created ``httpx.AsyncClient``; call
    :meth:`aclose` (or use ``async with``) at shutdown.  It is bound to the event
    loop it is first used on; if used from a different loop, loop-bound state
    (client, in-flight probes) is dropped and recreated, the cache is kept.
    """

    def __init__(
        self,
        settings: Optional[ProbeSettings] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        resolver: Optional[Resolver] = None,
    ) -> None:
        self.settings = settings if settings is not None else ProbeSettings()
        self._clock = clock
        self._resolver = resolver  # tests inject one; default: the system resolver (bot.outbound)
        self._client: Optional[OutboundClient] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._cache: Dict[str, Tuple[float, ProbeResult]] = {}
        self._inflight: Dict[Tuple[str, str], "asyncio.Task[ProbeResult]"] = {}
        self._canary_cache: Optional[Tuple[float, bool]] = None
        self._canary_task: Optional["asyncio.Task[bool]"] = None

    async def __aenter__(self) -> "SiteProber":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ public

    async def check(self, key: str, url: str) -> ProbeResult:
        started = time.perf_counter()
        try:
            self._bind_loop()
            cached = self._cache_get(key, url)
            if cached is not None:
                self._log(key, cached)
                return cached
            task = self._inflight.get((key, url))
            if task is None:
                task = asyncio.get_running_loop().create_task(self._run_probe(key, url))
                self._inflight[(key, url)] = task
            try:
                # shield: a cancelled / timed-out caller must not cancel the probe shared with others
                return await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.budget)
            except asyncio.TimeoutError:
                result = self._make(url, "unknown", "timeout", started)
                self._log(key, result)
                return result
            except asyncio.CancelledError:
                if task.cancelled():  # the shared probe was cancelled (aclose), not this caller
                    return self._make(url, "unknown", "cancelled", started)
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # pragma: no cover - defensive: check() never raises
            logger.error("bank site check failed internally key=%s error=%s", key, type(exc).__name__)
            return self._make(url if isinstance(url, str) else repr(url), "unknown", "internal_error", started)

    async def aclose(self) -> None:
        tasks = [t for t in self._inflight.values() if not t.done()]
        if self._canary_task is not None and not self._canary_task.done():
            tasks.append(self._canary_task)
        self._inflight = {}
        self._canary_task = None
        same_loop = self._loop is not None and self._loop is _running_loop()
        for t in tasks:
            t.cancel()
        if tasks and same_loop:
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None and same_loop:
            await client.aclose()

    def clear_cache(self) -> None:
        self._cache.clear()
        self._canary_cache = None

    # ------------------------------------------------------------------ internals

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # httpx connections and tasks are bound to a loop; start over on a new one.
            self._client = None
            self._inflight = {}
            self._canary_task = None
            self._loop = loop

    def _get_client(self) -> OutboundClient:
        if self._client is None or self._client.is_closed:
            s = self.settings
            # no keep-alive (OutboundClient): every probe measures a fresh DNS + TCP + TLS path to the bank
            self._client = OutboundClient(
                s.policy(),
                resolver=self._resolver,
                verify=s.verify_tls,
                headers={"User-Agent": s.user_agent, "Accept": _ACCEPT},
                use="bank_sites",
            )
        return self._client

    def _cache_get(self, key: str, url: str) -> Optional[ProbeResult]:
        entry = self._cache.get(key)
        if entry is None:
            return None
        stored_at, result = entry
        if result.url != url or self._clock() - stored_at >= self.settings.cache_ttl:
            return None
        return dataclasses.replace(result, from_cache=True)

    def _cache_put(self, key: str, result: ProbeResult) -> None:
        if self.settings.cache_ttl <= 0:
            return
        now = self._clock()
        if len(self._cache) >= 4096:
            ttl = self.settings.cache_ttl
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < ttl}
        self._cache[key] = (now, result)

    def _inner_budget(self) -> float:
        budget = self.settings.budget
        return budget - min(0.05, budget * 0.05)

    async def _run_probe(self, key: str, url: str) -> ProbeResult:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        inner = self._inner_budget()
        deadline = loop.time() + inner
        try:
            try:
                result = await asyncio.wait_for(self._probe(url, started, deadline), timeout=inner)
            except asyncio.TimeoutError:
                result = self._make(url, "unknown", "timeout", started)
            except Exception as exc:
                logger.error("bank site probe error key=%s error=%s", key, type(exc).__name__)
                result = self._make(url, "unknown", "internal_error", started)
            self._cache_put(key, result)
            self._log(key, result)
            return result
        finally:
            if self._inflight.get((key, url)) is asyncio.current_task():
                del self._inflight[(key, url)]

    async def _probe(self, url: str, started: float, deadline: float) -> ProbeResult:
        target = _parse_url(url)
        if target is None:
            return self._make(url, "unknown", "invalid_url", started)
        client = self._get_client()
        try:
            client.policy.check_url(target)
        except OutboundRefused as refused:
            if refused.reason in _INVALID_URL_REASONS:  # the address itself is malformed (not a redirect)
                return self._make(url, "unknown", "invalid_url", started)
        try:
            async with client.stream("GET", target) as streamed:
                response = streamed.response
                code = response.status_code
                body = b""
                if 200 <= code < 400 or code == 503:
                    body = await self._read_prefix(response, deadline)
                return self._classify(url, response, body, started, streamed.url)
        except OutboundRefused:
            # not contacted (or a redirect was not followed): nothing is known about the target
            return self._make(url, "unknown", "not_allowed", started)
        except OutboundRedirectLimit:
            return self._make(url, "unknown", "too_many_redirects", started)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return self._make(url, "unknown", "invalid_url", started)
        except OutboundDNSError:
            reason = "dns_failure"
        except httpx.TimeoutException:
            reason = "timeout"
        except httpx.TransportError as exc:
            reason = _network_reason(exc)

        # Network-level failure: is it the bank or our own outbound connectivity?
        connectivity = await self._have_connectivity(deadline)
        if connectivity is False:
            return self._make(url, "unknown", "no_outbound_connectivity", started)
        if connectivity is None:  # canary undecided within the budget
            return self._make(url, "unknown", "timeout", started)
        if reason in _DOWN_REASONS:
            return self._make(url, "down", reason, started)
        return self._make(url, "unknown", reason, started)

    async def _read_prefix(self, response: httpx.Response, deadline: float) -> bytes:
        limit = self.settings.max_body_bytes
        if limit <= 0:
            return b""
        chunks = []
        total = 0

        async def read() -> None:
            nonlocal total
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                total += len(chunk)
                if total >= limit:
                    break

        remaining = deadline - asyncio.get_running_loop().time() - 0.1
        try:
            await asyncio.wait_for(read(), timeout=max(0.0, remaining))
        except (asyncio.TimeoutError, httpx.HTTPError):
            pass  # headers arrived: classify on whatever part of the body we have
        return b"".join(chunks)[:limit]

    def _classify(self, url: str, response: httpx.Response, body: bytes, started: float, final_url: str) -> ProbeResult:
        code = response.status_code
        retry_after = response.headers.get("retry-after")
        maintenance = bool(body) and has_maintenance_wording(_decode_body(body, response.charset_encoding))
        if 200 <= code < 400:
            status, reason = ("maintenance", "maintenance_page") if maintenance else ("up", "ok")
        elif code == 503:
            if maintenance:
                status, reason = "maintenance", "maintenance_page"
            elif retry_after:
                status, reason = "maintenance", "retry_after"
            else:
                status, reason = "down", "http_503"
        elif 500 <= code < 600:
            status, reason = "down", f"http_{code}"
        elif 400 <= code < 500:
            status, reason = "up", f"http_{code}"  # the server answers; it just refuses robots
        else:
            status, reason = "unknown", f"http_{code}"
        elapsed = time.perf_counter() - started
        if status == "up" and elapsed > self.settings.slow_threshold:
            status, reason = "slow", "slow_response"
        return self._make(
            url, status, reason, started, http_status=code, retry_after=retry_after, final_url=_strip_url(final_url)
        )

    # ------------------------------------------------------------------ canary

    async def _have_connectivity(self, deadline: float) -> Optional[bool]:
        """True/False = canary verdict, None = not decided before ``deadline``."""
        if not self.settings.canary_urls:
            return True  # canary disabled by configuration
        cached = self._canary_cache
        if cached is not None and self._clock() - cached[0] < self.settings.cache_ttl:
            return cached[1]
        task = self._canary_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._run_canary())
            self._canary_task = task
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, remaining))
        except asyncio.TimeoutError:
            return None
        except asyncio.CancelledError:
            if task.cancelled():
                return None
            raise

    async def _run_canary(self) -> bool:
        started = time.perf_counter()
        try:
            ok = await asyncio.wait_for(self._any_canary_answers(), timeout=self.settings.budget)
        except asyncio.TimeoutError:
            ok = False
        except Exception:
            ok = False
        if self.settings.cache_ttl > 0:
            self._canary_cache = (self._clock(), ok)
        logger.info("outbound connectivity canary ok=%s elapsed_ms=%d", ok, int((time.perf_counter() - started) * 1000))
        return ok

    async def _any_canary_answers(self) -> bool:
        client = self._get_client()

        async def one(canary: str) -> bool:
            target = _parse_url(canary)
            if target is None:
                return False
            try:
                async with client.stream("GET", target, follow_redirects=False):
                    return True  # any HTTP status proves outbound connectivity
            except Exception:  # including a canary the outbound policy refuses
                return False

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(one(u)) for u in self.settings.canary_urls]
        try:
            for next_done in asyncio.as_completed(tasks):
                if await next_done:
                    return True
            return False
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ misc

    @staticmethod
    def _make(
        url: str,
        status: str,
        reason: str,
        started: float,
        *,
        http_status: Optional[int] = None,
        retry_after: Optional[str] = None,
        final_url: Optional[str] = None,
    ) -> ProbeResult:
        return ProbeResult(
            status=status,  # type: ignore[arg-type]
            url=url,
            reason=reason,
            http_status=http_status,
            elapsed_ms=max(0, int((time.perf_counter() - started) * 1000)),
            checked_at=time.time(),
            retry_after=retry_after,
            final_url=final_url,
        )

    @staticmethod
    def _log(key: str, result: ProbeResult) -> None:
        # Host only: never log paths' query strings (they may carry tokens).
        logger.log(
            logging.DEBUG if result.from_cache else logging.INFO,
            "bank site check key=%s host=%s status=%s reason=%s http_status=%s elapsed_ms=%d from_cache=%s",
            key,
            _host_of(result.url),
            result.status,
            result.reason,
            result.http_status,
            result.elapsed_ms,
            result.from_cache,
        )


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["SiteStatus", "SITE_STATUSES", "ProbeSettings", "ProbeResult", "SiteProber", "has_maintenance_wording"]
