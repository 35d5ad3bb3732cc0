"""The production nginx passes the public paths to the replicas and keeps Rasa's HTTP API (trackers,
``PUT /model``, which loads a model and so runs code) to the operators' addresses.

A real nginx (Debian's) in front of a real local HTTP server that records what reaches it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests import servers

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _render_module():
    spec = importlib.util.spec_from_file_location("nginx_render", DEPLOY / "nginx" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Upstream:
    """Answers 200 to everything and remembers the paths it was asked for."""

    def __init__(self) -> None:
        seen = self.seen = []
        headers = self.headers = []  # the request headers, in the order of ``seen``

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path))
                headers.append({k.lower(): v for k, v in self.headers.items()})
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


def _start_nginx(tmp_path: Path, upstream_port: int, admin_allow):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    port = servers.free_port()
    conf = tmp_path / "nginx.conf"
    argv = [
        "--out",
        str(conf),
        "--listen",
        f"127.0.0.1:{port}",
        "--actions-listen",
        f"127.0.0.1:{servers.free_port()}",
        "--rasa",
        f"127.0.0.1:{upstream_port}",
        "--actions",
        f"127.0.0.1:{upstream_port}",
        "--runtime-dir",
        str(tmp_path),
        "--log-dir",
        str(tmp_path),
    ]
    if admin_allow is not None:
        argv += ["--admin-allow", *admin_allow]
    assert _render_module().main(argv) == 0
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", f"{tmp_path}/", "-e", str(tmp_path / "err.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/nginx-health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError((tmp_path / "err.log").read_text(errors="replace"))


PUBLIC = [
    "/webhooks/rest/webhook",
    "/webhooks/slack/webhook",
    "/chat/widget.js",
    "/agent/",
    "/agent/api/me",
    "/agent/api/events",
    "/upload/analyse",
    "/status/outages",
    "/socket.io/?EIO=4&transport=polling",
]
ADMIN = [
    ("GET", "/conversations/rest-x/tracker"),
    ("PUT", "/model"),
    ("POST", "/conversations/rest-x/tracker/events"),
    ("GET", "/status"),
    ("GET", "/version"),
    ("GET", "/"),
    ("GET", "/agent"),
    ("GET", "/statusx"),
]


def test_outsiders_reach_the_public_paths_and_not_the_rasa_api(tmp_path, upstream):
    # the operators' network is TEST-NET-1 here: nobody on this machine is in it
    proc, base = _start_nginx(tmp_path, upstream.port, ["192.0.2.0/24"])
    try:
        for path in PUBLIC:
            r = httpx.get(base + path, timeout=5)
            assert r.status_code == 200, path
        for method, path in ADMIN:
            r = httpx.request(method, base + path, params={"token": "a-valid-token"}, timeout=5)
            assert r.status_code == 403, (method, path)
        reached = {p.split("?")[0] for _, p in upstream.seen}
        assert reached == {p.split("?")[0] for p in PUBLIC}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_path_gets_the_proxy_headers_and_the_client_cannot_choose_its_address(tmp_path, upstream):
    # A location with a proxy_set_header of its own drops every one of the server level: Host became
    # the upstream's name and the client's X-Forwarded-For passed alone (so, with TRUSTED_PROXIES
    # on loopback, a client could pick the address its rate limits count against).
    proc, base = _start_nginx(tmp_path, upstream.port, None)
    sent = {"Host": "help.example.com:8080", "X-Forwarded-For": "203.0.113.9"}
    try:
        for path in PUBLIC + [p for _, p in ADMIN if _ == "GET"]:
            r = httpx.get(base + path, headers=sent, timeout=5)
            assert r.status_code == 200, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(upstream.headers) == len(PUBLIC) + sum(1 for m, _ in ADMIN if m == "GET")
    for (_, path), got in zip(upstream.seen, upstream.headers):
        assert got.get("host") == "help.example.com", (path, got)
        assert got.get("x-forwarded-host") == "help.example.com:8080", (path, got)
        assert got.get("x-forwarded-proto") == "http", (path, got)
        assert got.get("x-real-ip") == "127.0.0.1", (path, got)
        # appended: the last hop is nginx's own word (bot/client_address.py reads from the right)
        assert got.get("x-forwarded-for") == "203.0.113.9, 127.0.0.1", (path, got)
        assert "upgrade" not in (got.get("connection") or "").lower(), (path, got)


def test_operators_reach_the_rasa_api_and_no_token_is_logged(tmp_path, upstream):
    proc, base = _start_nginx(tmp_path, upstream.port, None)  # the default: loopback
    try:
        for method, path in ADMIN:
            r = httpx.request(method, base + path, params={"token": "s3cret-api-token"}, timeout=5)
            assert r.status_code == 200, (method, path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    log = (tmp_path / "nginx-access.log").read_text()
    assert "/conversations/rest-x/tracker" in log, "the access log did not record the requests"
    assert "s3cret-api-token" not in log and "token=" not in log


def test_the_allow_list_takes_addresses_only():
    render = _render_module()
    with pytest.raises(ValueError, match="--admin-allow"):
        render.values(
            listen="8080",
            actions_listen="5050",
            rasa=["a:1"],
            actions=["b:2"],
            runtime_dir="/tmp",
            log_dir="-",
            admin_allow=["127.0.0.1; include /etc/passwd"],
        )
