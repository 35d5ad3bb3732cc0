"""Over what a request reached us, trusting proxies only by address: TLS (for ``Secure`` cookies) and
the server's own origin as the client sees it (for same-origin checks).

``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are plain request headers anyone can send; they mean
something only when the request came straight from one of our proxies (nginx, the ingress), listed in
``TRUSTED_PROXIES``. The client's address (``X-Forwarded-For``) is ``bot.client_address``'s job, with
the same list.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from bot import client_address
from bot.client_address import Network


def _peer_is_trusted(peer: str, networks: Tuple[Network, ...]) -> bool:
    address = client_address.parse_ip(peer)
    return address is not None and client_address.is_trusted(address, networks)


def is_https(scheme: str, peer: str, forwarded_proto: Optional[str], networks: Tuple[Network, ...]) -> bool:
    """Whether the client's connection is TLS: the socket's own scheme, or a trusted proxy's word."""
    if (scheme or "").lower() in ("https", "wss"):
        return True
    if forwarded_proto and _peer_is_trusted(peer, networks):
        return forwarded_proto.split(",")[0].strip().lower() == "https"
    return False


def _peer(request: Any) -> str:
    return getattr(request, "ip", "") or ""


def request_client_address(request: Any) -> str:
    """The real client address of a Sanic request (``bot.client_address``)."""
    return client_address.from_request(request)


def request_is_https(request: Any) -> bool:
    """Whether a Sanic request reached us (or our trusted proxy) over TLS."""
    conn_scheme = "https" if getattr(request.conn_info, "ssl", False) else "http"
    return is_https(conn_scheme, _peer(request), request.headers.get("x-forwarded-proto"), client_address.trusted_proxies())


def request_origin(request: Any) -> str:
    """This server's own origin as the client sees it (``https://host[:port]``), for same-origin checks:
    the ``Host`` header, or a trusted proxy's ``X-Forwarded-Host``."""
    host = request.headers.get("host") or ""
    forwarded_host = request.headers.get("x-forwarded-host")
    if forwarded_host and _peer_is_trusted(_peer(request), client_address.trusted_proxies()):
        host = forwarded_host.split(",")[0]
    host = host.strip().lower()
    scheme = "https" if request_is_https(request) else "http"
    return f"{scheme}://{host}" if host else ""
