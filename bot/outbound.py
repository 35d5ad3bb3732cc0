"""One policy for every HTTP request the product makes on someone's behalf (bank-site checks, files shared
in Slack and Teams, replies posted to a Teams service URL).

A URL that came from outside (typed by a customer, sent in a chat activity, found in a redirect) could
otherwise point the bot at our own network: ``http://127.0.0.1:6379/``, ``http://2130706433/``,
``http://[::ffff:127.0.0.1]/``, ``http://169.254.169.254/`` (cloud metadata), a name that resolves to
loopback, a DNS name that resolves to a public address when checked and to a private one when
connected to (rebinding), or a public site that redirects to any of those. This module refuses them:

* **the URL** is parsed strictly (:func:`parse_url`): ``http``/``https`` only, no user info, no
  backslashes, spaces or control characters, the host an ASCII (IDNA) DNS name or an IP literal. Every
  numeric IPv4 spelling ``inet_aton`` accepts (``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
  ``127.1``) is read as the address it means; IPv6 zone ids (``%eth0``) are refused.
* **the port** must be one of ``ports`` (80 and 443 by default).
* **the address**: the host is resolved *once* (without blocking the event loop, with a timeout) and
  *every* address it resolves to must be public (:func:`is_public`: not loopback, private, link-local,
  CGNAT, multicast, reserved, documentation, unspecified ..., including IPv4 addresses embedded in
  IPv6: mapped, compatible, NAT64, 6to4).
* **the connection** goes to the address that was checked: the request URL names the IP, the ``Host``
  header and TLS (SNI and certificate verification, via httpcore's ``sni_hostname`` extension) use the
  original name. No second DNS lookup happens, so rebinding cannot change the destination. Proxies from
  the environment are not used (``trust_env=False``): a proxy would resolve the name itself.
* **redirects** are followed by hand (at most ``max_redirects``), each hop checked like the first;
  ``Authorization`` and ``Cookie`` headers are dropped when a hop leaves the first URL's origin.
* **the body** is read up to ``max_bytes``; the whole exchange is bounded by ``total_timeout``.

Exceptions to "public addresses on ports 80/443" exist only as explicit configuration
(``OutboundPolicy.allow``, e.g. the test stack's ``127.0.0.1:<port>`` of a local fake server), never
by default. Plain Python + httpx; no Rasa imports.

Usage::

    policy = OutboundPolicy()                       # the defaults: public addresses, ports 80/443
    async with OutboundClient(policy) as client:
        fetched = await client.fetch("GET", "https://www.chase.com/")
    # OutboundRefused: the URL/address is not allowed (nothing was sent)
    # OutboundDNSError: the name does not resolve; OutboundTooLarge; OutboundRedirectLimit
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger("bot.outbound")

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: ``async resolver(host, port) -> addresses`` (strings); raises ``socket.gaierror`` when the name doesn't resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS: Tuple[int, ...] = (80, 443)
REDIRECT_CODES = (301, 302, 303, 307, 308)
_SENSITIVE_HEADERS = ("authorization", "cookie", "proxy-authorization")

# Not public, whatever Python's ``ipaddress`` thinks (its is_global differs between patch releases).
_BLOCKED_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID ...)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


# ---------------------------------------------------------------------------------------------------- errors
class OutboundError(Exception):
    """Base class: the request was not made, or did not complete within the policy."""


class OutboundRefused(OutboundError):
    """The policy does not allow this URL or address; nothing was sent. ``reason`` is machine-readable:
    ``bad_url``, ``scheme``, ``userinfo``, ``port``, ``address`` (not public), ``host`` (not allow-listed)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class OutboundDNSError(OutboundError):
    """The host name did not resolve (or not in time)."""


class OutboundTooLarge(OutboundError):
    def __init__(self, limit: int, declared: Optional[int] = None):
        super().__init__(f"the response is larger than {limit} bytes")
        self.limit, self.declared = limit, declared


class OutboundRedirectLimit(OutboundError):
    """More redirects than the policy allows."""


# ---------------------------------------------------------------------------------------------------- addresses
def embedded_ipv4(ip: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address stands for: mapped (``::ffff:a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``), 6to4 (``2002:aabb:ccdd::``); None for a plain IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, CGNAT, multicast,
    reserved, documentation, benchmarking, unspecified or broadcast; IPv6 addresses that embed an IPv4
    address are judged by that address too."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
        if ip.ipv4_mapped is not None:
            return True  # judged as its IPv4 address
        if any(ip in net for net in _BLOCKED_V6):
            return False
    elif any(ip in net for net in _BLOCKED_V4):
        return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_private
    )


def parse_ipv4_number(host: str) -> Optional[ipaddress.IPv4Address]:
    """The address a numeric IPv4 spelling means, as ``inet_aton`` (and so every browser and libc) reads it:
    1 to 4 parts, each decimal, ``0x`` hex or ``0`` octal (``2130706433``, ``0x7f.1``, ``0177.0.0.1``).
    None when ``host`` is not such a spelling (a name, or a number out of range)."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
                values.append(int(part[2:] or "0", 16))
            elif re.fullmatch(r"0[0-7]+", part):
                values.append(int(part, 8))
            elif re.fullmatch(r"[0-9]+", part):
                values.append(int(part, 10))
            else:
                return None
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (5 - len(values)) + last
    return ipaddress.IPv4Address(number)


def _looks_numeric(label: str) -> bool:
    return bool(re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", label))


@dataclass(frozen=True)
class Target:
    """A URL that passed :func:`parse_url`. ``host`` is lower-case ASCII (an IP literal as its normal form);
    ``ip`` is set when the URL named an address rather than a name; ``target`` is path + query."""

    scheme: str
    host: str
    port: int
    ip: Optional[IPAddress]
    target: str

    @property
    def origin(self) -> Tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.target}"

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: Any, schemes: Iterable[str] = ("http", "https")) -> Target:
    """``url`` as a :class:`Target`, or :class:`OutboundRefused` (``bad_url``, ``scheme``, ``userinfo``)."""
    if not isinstance(url, str) or not url or len(url) > 8192:
        raise OutboundRefused("bad_url", "not a URL")
    if _FORBIDDEN_URL_CHARS.search(url):
        raise OutboundRefused("bad_url", "spaces, control characters or backslashes")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", url)
    if not match:
        raise OutboundRefused("bad_url", "no scheme")
    scheme = match.group(1).lower()
    if scheme not in tuple(schemes):
        raise OutboundRefused("scheme", scheme)
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise OutboundRefused("bad_url", "no authority")
    rest = rest[2:]
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise OutboundRefused("userinfo", "credentials in the URL")
    tail = tail.split("#", 1)[0]
    if not tail.startswith("/"):
        tail = "/" + tail
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise OutboundRefused("bad_url", "unterminated IPv6 literal")
        literal, after = authority[1:close], authority[close + 1 :]
        if "%" in literal:
            raise OutboundRefused("address", "IPv6 zone id")
        try:
            ip: Optional[IPAddress] = ipaddress.IPv6Address(literal)
        except ValueError:
            raise OutboundRefused("bad_url", "bad IPv6 literal")
        if after and not after.startswith(":"):
            raise OutboundRefused("bad_url", "junk after the IPv6 literal")
        port_text = after[1:] if after else ""
        host = str(ip)
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep:
            host, port_text = authority, ""
        elif not port_text:
            pass  # "host:" means the default port
        host = host.lower()
        if host.endswith("."):
            host = host[:-1]
        if not host or "%" in host or ":" in host or "[" in host or "]" in host:
            raise OutboundRefused("bad_url", "bad host")
        try:
            host = host.encode("idna").decode("ascii") if not host.isascii() else host
        except UnicodeError:
            raise OutboundRefused("bad_url", "bad international host name")
        host = host.lower()
        labels = host.split(".")
        ip = None
        if _looks_numeric(labels[-1]):
            ip = parse_ipv4_number(host)
            if ip is None:
                raise OutboundRefused("bad_url", "bad IPv4 address")
            host = str(ip)
        else:
            if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
                raise OutboundRefused("bad_url", "bad host name")
    if port_text:
        if not port_text.isdigit() or len(port_text) > 5 or not 0 < int(port_text) <= 65535:
            raise OutboundRefused("bad_url", "bad port")
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    if ip is not None and isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1: checked and connected to as such
        host = str(ip)
    return Target(scheme, host, port, ip, tail)


# ---------------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class Allowance:
    """An explicit exception: addresses in ``network`` (on ``port`` only, or on any port when None) may be
    contacted although they are not public / the port is not one of the policy's."""

    network: Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
    port: Optional[int] = None

    @classmethod
    def parse(cls, text: Any) -> "Allowance":
        """``127.0.0.1``, ``127.0.0.1:8080``, ``10.0.0.0/8``, ``::1``, ``[::1]:8443``, ``[fd00::/8]``."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"outbound allowance must be an address string, got {text!r}")
        raw = text.strip()
        port: Optional[int] = None
        if raw.startswith("["):
            close = raw.find("]")
            if close == -1:
                raise ValueError(f"outbound allowance {text!r}: unterminated [")
            address, after = raw[1:close], raw[close + 1 :]
            if after:
                if not after.startswith(":") or not after[1:].isdigit():
                    raise ValueError(f"outbound allowance {text!r}: bad port")
                port = int(after[1:])
        elif raw.count(":") == 1:
            address, _, port_text = raw.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"outbound allowance {text!r}: bad port")
            port = int(port_text)
        else:
            address = raw
        if port is not None and not 0 < port <= 65535:
            raise ValueError(f"outbound allowance {text!r}: bad port")
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise ValueError(f"outbound allowance {text!r}: not an IP address or network (names are not allowed)")
        return cls(network, port)

    def matches(self, ip: IPAddress, port: int) -> bool:
        return ip.version == self.network.version and ip in self.network and (self.port is None or self.port == port)

    def __str__(self) -> str:
        net = str(self.network.network_address) if self.network.num_addresses == 1 else str(self.network)
        if self.port is None:
            return net
        return f"[{net}]:{self.port}" if self.network.version == 6 else f"{net}:{self.port}"


def _number(name: str, value: Any, minimum: float = 0.0, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError(f"outbound setting {name!r} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"outbound setting {name!r} must be >= {minimum}, got {value!r}")
    return value if integer else float(value)


@dataclass(frozen=True)
class OutboundPolicy:
    """What may be contacted, and how much of it may be read. The defaults are the production policy."""

    schemes: Tuple[str, ...] = ("http", "https")
    ports: Tuple[int, ...] = DEFAULT_PORTS
    allow: Tuple[Allowance, ...] = ()  # explicit exceptions (tests, on-premise services); none by default
    max_redirects: int = 5
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0  # the whole exchange, every redirect hop and the body included
    resolve_timeout: float = 3.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        schemes = tuple(str(s).lower() for s in self.schemes)
        if not schemes or any(s not in ("http", "https") for s in schemes):
            raise ValueError(f"outbound 'schemes' may only hold http and https, got {list(self.schemes)!r}")
        set_(self, "schemes", schemes)
        ports = tuple(_number("ports", p, 1, integer=True) for p in self.ports)
        if any(p > 65535 for p in ports):
            raise ValueError(f"outbound 'ports' must be 1..65535, got {list(ports)!r}")
        set_(self, "ports", ports)
        set_(self, "allow", tuple(a if isinstance(a, Allowance) else Allowance.parse(a) for a in self.allow))
        set_(self, "max_redirects", _number("max_redirects", self.max_redirects, 0, integer=True))
        set_(self, "max_bytes", _number("max_bytes", self.max_bytes, 0, integer=True))
        for name in ("connect_timeout", "read_timeout", "total_timeout", "resolve_timeout"):
            value = _number(name, getattr(self, name))
            if value <= 0:
                raise ValueError(f"outbound setting {name!r} must be > 0")
            set_(self, name, value)

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "OutboundPolicy":
        """From a (YAML) mapping; unknown keys or bad values raise ValueError."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"outbound settings must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown outbound setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kwargs = {}
        for key, value in data.items():
            if key in ("schemes", "ports", "allow"):
                if value is None:
                    value = []
                if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                    raise ValueError(f"outbound setting {key!r} must be a list")
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "OutboundPolicy":
        return dataclasses.replace(self, **changes)

    def allowed(self, ip: IPAddress, port: int) -> bool:
        """May a connection go to ``ip``:``port``? (Public and on one of ``ports``, or explicitly allowed.)"""
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(a.matches(ip, port) for a in self.allow):
            return True
        return port in self.ports and is_public(ip)

    def check_url(self, url: Any) -> Target:
        """The parsed URL if its scheme is allowed and its port could be (before resolving); else OutboundRefused."""
        target = parse_url(url, self.schemes)
        if target.port not in self.ports and not any(a.port in (None, target.port) for a in self.allow):
            raise OutboundRefused("port", str(target.port))
        if target.ip is not None and not self.allowed(target.ip, target.port):
            raise OutboundRefused("address", f"{target.host}:{target.port}")
        return target


# ---------------------------------------------------------------------------------------------------- resolving
async def system_resolver(host: str, port: int) -> List[str]:
    """The addresses ``host`` resolves to, from the system resolver in a worker thread (the event loop
    keeps running). Raises ``socket.gaierror``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


async def resolve_checked(target: Target, policy: OutboundPolicy, resolver: Optional[Resolver] = None) -> IPAddress:
    """The one address to connect to for ``target``: the literal, or the first address of a single
    resolution whose every address the policy allows. OutboundRefused / OutboundDNSError otherwise."""
    if target.ip is not None:
        if not policy.allowed(target.ip, target.port):
            raise OutboundRefused("address", f"{target.host}:{target.port}")
        return target.ip
    resolve = resolver or system_resolver
    try:
        raw = await asyncio.wait_for(resolve(target.host, target.port), timeout=policy.resolve_timeout)
    except asyncio.TimeoutError:
        raise OutboundDNSError(f"{target.host}: resolving timed out") from socket.gaierror(socket.EAI_AGAIN, "timeout")
    except (socket.gaierror, UnicodeError) as error:
        raise OutboundDNSError(f"{target.host}: does not resolve") from error
    except OSError as error:
        raise OutboundDNSError(f"{target.host}: resolving failed") from error
    addresses: List[IPAddress] = []
    for text in raw:
        try:
            ip = ipaddress.ip_address(str(text).split("%", 1)[0]) if "%" not in str(text) else None
        except ValueError:
            ip = None
        if ip is None:
            raise OutboundRefused("address", f"{target.host} resolves to an unusable address")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        addresses.append(ip)
    if not addresses:
        raise OutboundDNSError(f"{target.host}: no addresses")
    refused = [ip for ip in addresses if not policy.allowed(ip, target.port)]
    if refused:
        raise OutboundRefused("address", f"{target.host} resolves to {refused[0]}")
    # prefer IPv4 (more often reachable); all of them passed the check
    addresses.sort(key=lambda ip: ip.version)
    return addresses[0]


# ---------------------------------------------------------------------------------------------------- requests
@dataclass
class Fetched:
    """A completed exchange: the final hop's status, headers and (capped) body; ``url`` is the final URL as
    the server named it (not the IP connected to)."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str
    redirects: int
    elapsed: float

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        import json

        return json.loads(self.content)


@dataclass
class Streamed:
    """An open response of :meth:`OutboundClient.stream` (the body not read yet)."""

    response: httpx.Response
    url: str
    redirects: int


AuthFor = Callable[[str], Awaitable[Optional[Dict[str, str]]]]


class OutboundClient:
    """Makes requests under an :class:`OutboundPolicy`. One per use (or per process); ``aclose()`` at the end.

    ``resolver`` replaces the system resolver (tests inject one to prove the resolve-once behaviour);
    ``verify`` is passed to httpx (True, False, or an ``ssl.SSLContext``/CA file for tests);
    ``use`` names the caller in the log (``bank_sites``, ``slack``, ``teams``).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Optional[Resolver] = None,
        verify: Any = True,
        headers: Optional[Mapping[str, str]] = None,
        use: str = "outbound",
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.use = use
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy: it would resolve the name itself, after our check
            timeout=httpx.Timeout(
                connect=policy.connect_timeout, read=policy.read_timeout, write=policy.read_timeout, pool=policy.connect_timeout
            ),
            # no keep-alive: a pooled connection is keyed by IP, and must not carry another host's request
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            verify=verify,
            headers=dict(headers or {}),
        )

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> "OutboundClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def _refused(self, target_url: str, error: OutboundRefused) -> None:
        try:
            host = urlsplit(target_url).hostname or "-"
        except ValueError:
            host = "-"
        logger.warning(
            "Outbound request refused (use=%s host=%s reason=%s): nothing was sent.", self.use, host[:100], error.reason
        )

    async def _build(self, method: str, url: str, headers: Mapping[str, str], **kwargs: Any) -> httpx.Request:
        try:
            target = self.policy.check_url(url)
            ip = await resolve_checked(target, self.policy, self.resolver)
        except OutboundRefused as refused:
            self._refused(url, refused)
            raise
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        pinned = f"{target.scheme}://{literal}:{target.port}{target.target}"
        extensions: Dict[str, Any] = {}
        if target.ip is None and target.scheme == "https":
            extensions["sni_hostname"] = target.host  # TLS: SNI and certificate checked for the name
        request = self._client.build_request(
            method, pinned, headers={**headers, "Host": target.host_header()}, extensions=extensions, **kwargs
        )
        return request

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        follow_redirects: bool = True,
        max_redirects: Optional[int] = None,
        auth_for: Optional[AuthFor] = None,
        **kwargs: Any,
    ) -> AsyncIterator[Streamed]:
        """An open response, redirects followed hop by hop (each hop checked). ``auth_for(url)`` gives
        extra headers per hop (e.g. a token for one host only); ``headers`` with credentials are sent to
        the first URL's origin only. Not time-bounded as a whole: wrap in a timeout (``fetch`` does)."""
        limit = self.policy.max_redirects if max_redirects is None else max_redirects
        base = dict(headers or {})
        first_origin = _origin(url)
        hops = 0
        while True:
            hop_headers = dict(base)
            if _origin(url) != first_origin:
                hop_headers = {k: v for k, v in hop_headers.items() if k.lower() not in _SENSITIVE_HEADERS}
            if auth_for is not None:
                hop_headers.update(await auth_for(url) or {})
            request = await self._build(method, url, hop_headers, **kwargs)
            response = await self._client.send(request, stream=True)
            location = response.headers.get("location")
            if follow_redirects and response.status_code in REDIRECT_CODES and location:
                await response.aclose()
                if hops >= limit:
                    raise OutboundRedirectLimit(f"more than {limit} redirects")
                hops += 1
                try:
                    url = str(httpx.URL(url).join(location))
                except (httpx.InvalidURL, ValueError):
                    raise OutboundRefused("bad_url", "bad redirect location")
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method = "GET" if method != "HEAD" else "HEAD"
                    kwargs = {k: v for k, v in kwargs.items() if k not in ("content", "data", "json", "files")}
                continue
            try:
                yield Streamed(response, url, hops)
            finally:
                await response.aclose()
            return

    async def fetch(
        self, method: str, url: str, *, max_bytes: Optional[int] = None, timeout: Optional[float] = None, **kwargs: Any
    ) -> Fetched:
        """The whole exchange (see :meth:`stream`), the body read up to ``max_bytes`` (OutboundTooLarge
        beyond), within ``timeout`` (default ``total_timeout``; ``asyncio.TimeoutError`` after)."""
        limit = self.policy.max_bytes if max_bytes is None else max_bytes
        started = time.perf_counter()

        async def run() -> Fetched:
            async with self.stream(method, url, **kwargs) as streamed:
                body = await read_capped(streamed.response, limit)
                r = streamed.response
                return Fetched(r.status_code, r.headers, body, streamed.url, streamed.redirects, time.perf_counter() - started)

        return await asyncio.wait_for(run(), timeout=self.policy.total_timeout if timeout is None else timeout)


def _origin(url: str) -> Tuple[str, str, int]:
    try:
        t = parse_url(url)
        return t.origin
    except OutboundRefused:
        return ("", url, 0)


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """A streamed response's body, OutboundTooLarge when it declares or sends more than ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OutboundTooLarge(limit, int(declared))
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise OutboundTooLarge(limit)
    return bytes(body)


# ---------------------------------------------------------------------------------------------------- host allow-lists
def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Is ``host`` (a DNS name) one of ``patterns``? ``example.com`` matches that name only,
    ``*.example.com`` any name below it (not ``example.com`` itself). IP addresses match literally."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = str(pattern).strip().lower().rstrip(".")
        if not pattern:
            continue
        if pattern.startswith("*."):
            suffix = pattern[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == pattern:
            return True
    return False


__all__ = [
    "Allowance",
    "Fetched",
    "OutboundClient",
    "OutboundDNSError",
    "OutboundError",
    "OutboundPolicy",
    "OutboundRedirectLimit",
    "OutboundRefused",
    "OutboundTooLarge",
    "Streamed",
    "Target",
    "embedded_ipv4",
    "host_matches",
    "is_public",
    "parse_ipv4_number",
    "parse_url",
    "read_capped",
    "resolve_checked",
    "system_resolver",
]
