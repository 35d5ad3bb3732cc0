"""The real address of the client behind a request: the TCP peer, or what a trusted proxy says.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only hop by hop from
the right: while the address we have (starting with the TCP peer) is a trusted proxy, the entry it
appended is taken as the next hop. The first untrusted address is the client. With no trusted
proxies (the default) the header is ignored and the peer is the client.

``TRUSTED_PROXIES``: comma-separated addresses or networks (``127.0.0.1``, ``10.0.0.0/8``,
``::1``), e.g. the nginx in front of the replicas (scripts/prod-up.sh sets it to loopback).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
UNKNOWN = "unknown"


def parse_networks(value: Optional[str]) -> Tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; raises ValueError naming a bad entry."""
    networks = []
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: {part!r} is not an IP address or network")
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _cached_networks(value: str) -> Tuple[Network, ...]:
    return parse_networks(value)


def trusted_proxies(env: Optional[Mapping[str, str]] = None) -> Tuple[Network, ...]:
    env = os.environ if env is None else env
    return _cached_networks(env.get("TRUSTED_PROXIES", "") or "")


def parse_ip(value: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1 and "." in value:  # "203.0.113.7:5123"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def is_trusted(address: Any, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def resolve(peer: Optional[str], forwarded_for: Optional[str], networks: Iterable[Network]) -> str:
    """The client's address, given the TCP peer and the ``X-Forwarded-For`` header(s)."""
    networks = tuple(networks)
    current = parse_ip(peer or "")
    if current is None:
        return UNKNOWN
    hops = [h for h in (forwarded_for or "").split(",") if h.strip()]
    while hops and is_trusted(current, networks):
        nxt = parse_ip(hops.pop())
        if nxt is None:
            break  # garbage from a trusted proxy's client: keep the last address we can vouch for
        current = nxt
    return str(current)


def from_request(request: Any, env: Optional[Mapping[str, str]] = None) -> str:
    """The client address of a Sanic request."""
    peer = getattr(request, "ip", None) or ""
    headers = getattr(request, "headers", None)
    forwarded = None
    if headers is not None:
        values = headers.getall("x-forwarded-for", []) if hasattr(headers, "getall") else [headers.get("x-forwarded-for")]
        forwarded = ",".join(v for v in values if v) or None
    return resolve(peer, forwarded, trusted_proxies(env))


def from_environ(environ: Optional[Mapping[str, Any]], env: Optional[Mapping[str, str]] = None) -> str:
    """The client address of a Socket.IO connection (python-engineio's environ of its first request)."""
    if not environ:
        return UNKNOWN
    request = environ.get("sanic.request")
    if request is not None:
        return from_request(request, env)
    return resolve(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), trusted_proxies(env))


def client_key(address: str, env: Optional[Mapping[str, str]] = None) -> str:
    """A pseudonymous key for an address (what the action server sees, never the address itself):
    the first 20 hex digits of sha256(``CLIENT_KEY_SALT`` + address). Same on every replica."""
    env = os.environ if env is None else env
    salt = env.get("CLIENT_KEY_SALT", "bankfeed")
    return hashlib.sha256(f"{salt}|{address}".encode("utf-8")).hexdigest()[:20]
