"""Who sent a request, and over what: the real client address and scheme, trusting proxies only by address.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are plain request headers anyone can send; they mean
something only when the request came straight from one of our proxies (nginx, the ingress). Those
are listed in ``TRUSTED_PROXIES`` (comma-separated addresses or networks, e.g.
``127.0.0.1,10.0.0.0/8``; default: none, so the headers are ignored and the peer is the client).

* client address: the socket peer; if the peer is trusted, the right-most ``X-Forwarded-For`` hop
  that is not itself a trusted proxy (the hops to its right were appended by our proxies; anything
  to its left was written by the client and proves nothing);
* scheme: ``https`` if the connection itself is TLS, or if a trusted peer says
  ``X-Forwarded-Proto: https`` (and the host it was asked for, ``X-Forwarded-Host``).
"""
from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from typing import Any, Mapping, Optional, Tuple, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def parse_networks(raw: str) -> Tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; ValueError naming the bad entry."""
    networks = []
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"TRUSTED_PROXIES: '{part}' is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8).") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _cached(raw: str) -> Tuple[Network, ...]:
    return parse_networks(raw)


def trusted_networks(env: Optional[Mapping[str, str]] = None) -> Tuple[Network, ...]:
    return _cached((os.environ if env is None else env).get("TRUSTED_PROXIES", "") or "")


def _address(text: str) -> Optional[Address]:
    text = (text or "").strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Optional[Address], networks: Tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(peer: str, forwarded_for: Optional[str], networks: Tuple[Network, ...]) -> str:
    """The client's address (see the module docstring); ``peer`` is the socket's remote address."""
    peer_address = _address(peer)
    if not is_trusted(peer_address, networks) or not forwarded_for:
        return str(peer_address) if peer_address is not None else (peer or "unknown")
    client = peer_address
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        hop_address = _address(hop)
        if hop_address is None:
            break  # garbage where a proxy should have written an address: stop at the last good hop
        client = hop_address
        if not is_trusted(hop_address, networks):
            break
    return str(client)


def is_https(scheme: str, peer: str, forwarded_proto: Optional[str], networks: Tuple[Network, ...]) -> bool:
    """Whether the client's connection is TLS: the socket's own scheme, or a trusted proxy's word."""
    if (scheme or "").lower() in ("https", "wss"):
        return True
    if forwarded_proto and is_trusted(_address(peer), networks):
        return forwarded_proto.split(",")[0].strip().lower() == "https"
    return False


# ------------------------------------------------------------------ Sanic requests
def _peer(request: Any) -> str:
    return getattr(request, "ip", "") or ""


def request_client_address(request: Any) -> str:
    """The real client address of a Sanic request."""
    return client_address(_peer(request), request.headers.get("x-forwarded-for"), trusted_networks())


def request_is_https(request: Any) -> bool:
    """Whether a Sanic request reached us (or our trusted proxy) over TLS."""
    conn_scheme = "https" if getattr(request.conn_info, "ssl", False) else "http"
    return is_https(conn_scheme, _peer(request), request.headers.get("x-forwarded-proto"), trusted_networks())


def request_origin(request: Any) -> str:
    """This server's own origin as the client sees it (``https://host[:port]``), for same-origin checks:
    the ``Host`` header, or a trusted proxy's ``X-Forwarded-Host`` (nginx's ``$host`` drops the port)."""
    host = request.headers.get("host") or ""
    forwarded_host = request.headers.get("x-forwarded-host")
    if forwarded_host and is_trusted(_address(_peer(request)), trusted_networks()):
        host = forwarded_host.split(",")[0]
    host = host.strip().lower()
    scheme = "https" if request_is_https(request) else "http"
    return f"{scheme}://{host}" if host else ""
