"""Reusable fake bank web sites on 127.0.0.1 for tests, benchmarks and browser tests.

Stdlib only (plus ``cryptography`` for the self-signed certificate).  One server
serves many "banks": the behaviour is chosen by the *last* path segment, so
``/healthy`` and ``/chase/healthy`` behave the same but are counted separately.

Modes (last path segment):

    healthy          200 small HTML page
    maintenance      503 + Retry-After + maintenance page
    maintenance-200  200 page saying "down for scheduled maintenance"
    error500         500
    error502         502
    unavailable      503 without Retry-After / maintenance wording
    hang             accepts the request and never answers (until close())
    slow             ?delay=2.0 seconds before a 200 page (interrupted by close())
    redirect         302 -> ?to=... (default: sibling ``healthy``)
    redirect-loop    302 to itself, forever
    forbidden        403
    notfound / anything unknown   404
    status           ?code=NNN[&retry=S]  answer with that status (and Retry-After)
    drop             close the connection without an HTTP answer

Per-path overrides: ``site.set_mode("/bank-x", "error500")`` lets one path
change behaviour during a test (e.g. a bank going down and coming back).

Usage::

    with FakeBankSite() as site:
        url = site.url("/healthy")
        ...
        assert site.hits("/healthy") == 1
        site.last_headers("/healthy")["User-Agent"]
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

HEALTHY_PAGE = (
    "<!doctype html><html><head><title>Example Bank - Online Banking</title></head>"
    "<body><h1>Welcome to Example Bank</h1><p>Sign in to online banking.</p></body></html>"
)
MAINTENANCE_PAGE = (
    "<!doctype html><html><head><title>Example Bank - Maintenance</title></head>"
    "<body><h1>Online banking is under maintenance</h1>"
    "<p>We are performing scheduled maintenance. We&#39;ll be back shortly.</p></body></html>"
)
MAINTENANCE_200_PAGE = (
    "<!doctype html><html><head><title>Example Bank</title></head>"
    "<body><p>Our site is currently down for scheduled maintenance. Please try again later.</p></body></html>"
)
ERROR_PAGE = "<!doctype html><html><body><h1>Internal Server Error</h1></body></html>"
PLAIN_503_PAGE = "<!doctype html><html><body><h1>Service Unavailable</h1></body></html>"

MODES = (
    "healthy",
    "maintenance",
    "maintenance-200",
    "error500",
    "error502",
    "unavailable",
    "hang",
    "slow",
    "redirect",
    "redirect-loop",
    "forbidden",
    "notfound",
    "status",
    "drop",
)

_MAX_HANG_SECONDS = 120.0  # a safety net: a hung handler gives up on its own eventually


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, site: "FakeBankSite", ssl_context: Optional[ssl.SSLContext]):
        self.site = site
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # TLS handshake happens in the per-connection thread, never in the accept loop.
        wrapped = None
        if self.ssl_context is not None:
            # wrap_socket() takes over the fd; socketserver only closes the raw socket,
            # so the SSL socket must be closed here.
            try:
                request.settimeout(5.0)
                wrapped = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
                wrapped.do_handshake()
                wrapped.settimeout(None)
            except (OSError, ssl.SSLError):
                self.site._count_tls_failure()
                if wrapped is not None:
                    wrapped.close()
                return
            request = wrapped
        self.site._track(request)
        try:
            super().finish_request(request, client_address)
        finally:
            self.site._untrack(request)
            if wrapped is not None:
                try:
                    wrapped.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):  # keep test output quiet
        pass


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeBank/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def do_POST(self):
        self._dispatch(head=False)

    def _send(self, code: int, body: str = "", headers: Optional[Dict[str, str]] = None, *, head: bool = False):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head and data:
            self.wfile.write(data)

    def _dispatch(self, head: bool):
        site: FakeBankSite = self.server.site  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        path = parts.path or "/"
        query = parse_qs(parts.query)
        site._record(path, dict(self.headers.items()))
        mode = site._mode_for(path)
        stop = site._stop
        try:
            if mode == "healthy":
                self._send(200, HEALTHY_PAGE, head=head)
            elif mode == "maintenance":
                self._send(503, MAINTENANCE_PAGE, {"Retry-After": query.get("retry", ["3600"])[0]}, head=head)
            elif mode == "maintenance-200":
                self._send(200, MAINTENANCE_200_PAGE, head=head)
            elif mode == "error500":
                self._send(500, ERROR_PAGE, head=head)
            elif mode == "error502":
                self._send(502, ERROR_PAGE, head=head)
            elif mode == "unavailable":
                self._send(503, PLAIN_503_PAGE, head=head)
            elif mode == "hang":
                stop.wait(_MAX_HANG_SECONDS)
                self.close_connection = True
            elif mode == "slow":
                delay = float(query.get("delay", ["2.0"])[0])
                if stop.wait(delay):
                    return
                self._send(200, HEALTHY_PAGE, head=head)
            elif mode == "redirect":
                target = query.get("to", [path.rsplit("/", 1)[0] + "/healthy"])[0]
                self._send(302, "", {"Location": target}, head=head)
            elif mode == "redirect-loop":
                self._send(302, "", {"Location": self.path}, head=head)
            elif mode == "forbidden":
                self._send(403, "<html><body>Forbidden</body></html>", head=head)
            elif mode == "status":
                extra = {"Retry-After": query["retry"][0]} if "retry" in query else {}
                self._send(int(query.get("code", ["200"])[0]), HEALTHY_PAGE, extra, head=head)
            elif mode == "drop":
                self.close_connection = True
                return
            else:
                self._send(404, "<html><body>Not found</body></html>", head=head)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the client gave up (timeouts / cancellations in tests)


class FakeBankSite:
    """A threaded fake bank web server on 127.0.0.1:<random port>.

    ``FakeBankSite(tls=True)`` serves HTTPS with a freshly generated self-signed
    certificate (valid for 127.0.0.1 and ``cert_names``, default localhost) that
    no client trusts by default; ``site.cert_path`` is the PEM file if a test
    wants to trust it.
    """

    def __init__(self, *, tls: bool = False, cert_names: Tuple[str, ...] = ("localhost",)):
        self._lock = threading.Lock()
        self._hits: Dict[str, int] = defaultdict(int)
        self._headers: Dict[str, List[Dict[str, str]]] = defaultdict(list)
        self._overrides: Dict[str, str] = {}
        self._stop = threading.Event()
        self._open_sockets: set = set()
        self.tls_failures = 0
        self._tmpdir: Optional[tempfile.TemporaryDirectory] = None
        self.cert_path: Optional[str] = None
        context = None
        if tls:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fakebank-tls-")
            self.cert_path, key_path = generate_self_signed_cert(self._tmpdir.name, cert_names)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert_path, key_path)
        self.scheme = "https" if tls else "http"
        self._server = _Server(self, context)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeBankSite:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # -- public API -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/healthy") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def hits(self, path: str) -> int:
        """Requests received for ``path`` (query string ignored)."""
        with self._lock:
            return self._hits.get(urlsplit(path).path, 0)

    def total_hits(self) -> int:
        with self._lock:
            return sum(self._hits.values())

    def last_headers(self, path: str) -> Dict[str, str]:
        """Headers of the most recent request to ``path`` (case-insensitive lookup)."""
        with self._lock:
            seen = self._headers.get(urlsplit(path).path)
            if not seen:
                raise KeyError(f"no request seen for {path}")
            return _CaseInsensitiveDict(seen[-1])

    def set_mode(self, path: str, mode: Optional[str]) -> None:
        """Override the mode of one exact path (``None`` removes the override)."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        with self._lock:
            if mode is None:
                self._overrides.pop(path, None)
            else:
                self._overrides[path] = mode

    def reset_counts(self) -> None:
        with self._lock:
            self._hits.clear()
            self._headers.clear()

    def close(self) -> None:
        """Stop the server; releases hanging/slow handlers.  Idempotent, never blocks long."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            socks = list(self._open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> "FakeBankSite":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- server side hooks ----------------------------------------------------

    def _record(self, path: str, headers: Dict[str, str]) -> None:
        with self._lock:
            self._hits[path] += 1
            self._headers[path].append(headers)

    def _mode_for(self, path: str) -> str:
        with self._lock:
            override = self._overrides.get(path)
        if override:
            return override
        return path.rstrip("/").rsplit("/", 1)[-1] or "healthy"

    def _track(self, sock) -> None:
        with self._lock:
            self._open_sockets.add(sock)

    def _untrack(self, sock) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def _count_tls_failure(self) -> None:
        with self._lock:
            self.tls_failures += 1


class _CaseInsensitiveDict(dict):
    def __init__(self, data: Dict[str, str]):
        super().__init__(data)
        self._lower = {k.lower(): v for k, v in data.items()}

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def get(self, key: str, default=None):  # type: ignore[override]
        return self._lower.get(key.lower(), default)

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and key.lower() in self._lower


# --------------------------------------------------------------------------- helpers


def refused_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_url(path: str = "/") -> str:
    return f"http://127.0.0.1:{refused_port()}{path}"


def generate_self_signed_cert(directory: str, names: Tuple[str, ...] = ("localhost",)) -> Tuple[str, str]:
    """Write a self-signed cert + key (CN 127.0.0.1, SAN 127.0.0.1 and ``names``) to ``directory``.

    Returns ``(cert_path, key_path)``.  Uses ``cryptography`` (EC P-256, fast).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fake Bank Test CA"),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(n) for n in names),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "fakebank-cert.pem")
    key_path = os.path.join(directory, "fakebank-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


__all__ = [
    "FakeBankSite",
    "MODES",
    "refused_port",
    "refused_url",
    "generate_self_signed_cert",
    "HEALTHY_PAGE",
    "MAINTENANCE_PAGE",
    "MAINTENANCE_200_PAGE",
]
