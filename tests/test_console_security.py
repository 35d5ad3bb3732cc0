"""The console's and the server's trust boundaries, against the real server: CORS per route, the
CSRF token, sign-in limits and lock-outs, the bounded password pool, live streams that end with the
session, cookie flags behind the proxy, and the API token kept off command lines and out of logs.

The tests' own address (127.0.0.1) is the trusted proxy of the test stack (TRUSTED_PROXIES), so a
test picks its client address with ``X-Forwarded-For``; 127.0.0.2 and 127.0.0.3 are untrusted peers.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import servers
from tests.conftest import WIDGET_HOST_ORIGIN, ConsoleClient

EVIL_ORIGIN = "https://evil.example.net"
PASSWORD = "correct horse battery"
MAX_FAILURES = 5  # LOGIN_MAX_FAILURES default
LOCKOUT = 10  # LOGIN_LOCKOUT_SECONDS of the test stack (tests/conftest.py)


def new_agent(handoff_db, prefix: str = "sec") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    handoff_db.agents.create_agent(name, PASSWORD, name.title())
    return name


def fresh_address() -> str:
    return f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"


def login(stack, username: str, password: str, address: str = None, client: httpx.Client = None, headers=None):
    headers = {**({"X-Forwarded-For": address} if address else {}), **(headers or {})}
    http = client or httpx
    return http.post(
        f"{stack.url}/agent/api/login", json={"username": username, "password": password}, headers=headers, timeout=60
    )


def from_peer(ip: str) -> httpx.Client:
    """A client whose connections come from ``ip`` (any 127.x address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=60)


def cors_headers(r: httpx.Response) -> dict:
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


# ------------------------------------------------------------------------------------------------ CORS
def test_chat_endpoints_allow_the_widget_hosts_and_nobody_else(rasa_stack):
    base = rasa_stack.url
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    for path in ("/webhooks/rest/webhook", "/upload/analyse"):
        r = httpx.options(base + path, headers={"Origin": WIDGET_HOST_ORIGIN, **preflight}, timeout=10)
        assert r.status_code in (200, 204), (path, r.status_code)
        assert r.headers["access-control-allow-origin"] == WIDGET_HOST_ORIGIN, path
        assert "POST" in r.headers["access-control-allow-methods"] and "Content-Type" in r.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in r.headers
        assert "Origin" in r.headers.get("vary", "")
        r = httpx.options(base + path, headers={"Origin": EVIL_ORIGIN, **preflight}, timeout=10)
        assert cors_headers(r) == {}, (path, r.headers)

    history = f"{base}/chat/history"
    params = {"session_id": servers.widget_session(base)}
    r = httpx.get(history, params=params, headers={"Origin": WIDGET_HOST_ORIGIN}, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WIDGET_HOST_ORIGIN
    r = httpx.get(history, params=params, headers={"Origin": EVIL_ORIGIN}, timeout=10)
    assert r.status_code == 200 and cors_headers(r) == {}  # was "*" before

    # an error answer of a chat endpoint is readable by the allowed page too (and only by it)
    r = httpx.post(
        f"{base}/upload/analyse",
        content=b"{}",
        headers={"Origin": WIDGET_HOST_ORIGIN, "Content-Type": "application/json"},
        timeout=10,
    )
    assert 400 <= r.status_code < 500 and r.headers["access-control-allow-origin"] == WIDGET_HOST_ORIGIN
    r = httpx.post(
        f"{base}/upload/analyse", content=b"{}", headers={"Origin": EVIL_ORIGIN, "Content-Type": "application/json"}, timeout=10
    )
    assert cors_headers(r) == {}


def test_console_and_http_api_are_same_origin_only(rasa_stack):
    base = rasa_stack.url
    for origin in (WIDGET_HOST_ORIGIN, EVIL_ORIGIN):
        for method, path in [
            ("OPTIONS", "/agent/api/login"),
            ("OPTIONS", "/agent/api/tickets/1/claim"),
            ("GET", "/agent/api/me"),
            ("POST", "/agent/api/login"),
            ("GET", "/status"),
            ("OPTIONS", "/conversations/x/tracker"),
            ("GET", "/agent/"),
        ]:
            headers = {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            }
            r = httpx.request(method, base + path, headers=headers, timeout=10)
            assert cors_headers(r) == {}, (origin, method, path, r.headers)
    # public, anonymous resources keep "*", never with credentials
    r = httpx.get(f"{base}/chat/widget.js", headers={"Origin": EVIL_ORIGIN}, timeout=10)
    assert r.headers["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in r.headers


def test_widget_socket_accepts_allowed_and_own_origins_only(rasa_stack):
    url = f"{rasa_stack.url}/socket.io/"
    params = {"EIO": "4", "transport": "polling"}
    for origin in (WIDGET_HOST_ORIGIN, rasa_stack.url):
        r = httpx.get(url, params=params, headers={"Origin": origin}, timeout=10)
        assert r.status_code == 200 and '"sid"' in r.text, (origin, r.status_code, r.text[:200])
        assert r.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in r.headers
    r = httpx.get(url, params=params, headers={"Origin": EVIL_ORIGIN}, timeout=10)
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
    assert httpx.get(url, params=params, timeout=10).status_code == 200  # no Origin: not a browser page


# ------------------------------------------------------------------------------------------------ CSRF
def test_state_changes_need_the_sessions_csrf_token(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "csrf")
    a = ConsoleClient(rasa_stack.url, name, PASSWORD)
    b = ConsoleClient(rasa_stack.url, name, PASSWORD)  # a second session of the same agent
    assert a.csrf_token != b.csrf_token
    me = a.get("/me").json()
    assert me["csrf_token"] == a.csrf_token  # a reloaded page gets it back

    claim = "/tickets/999999/claim"  # past the CSRF check it is a 404
    cookies = {"agent_session": a.http.cookies.get("agent_session")}
    url = f"{rasa_stack.url}/agent/api{claim}"
    for headers in (
        {},
        {"X-Requested-With": "console"},
        {"X-CSRF-Token": b.csrf_token},
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": a.csrf_token[:-1]},
        {"X-CSRF-Token": "x" * 5000},
    ):
        r = httpx.post(url, cookies=cookies, headers=headers, json={}, timeout=10)
        assert r.status_code == 403 and "CSRF" in r.json()["error"], (headers, r.status_code)
    assert httpx.post(url, cookies=cookies, headers={"X-CSRF-Token": a.csrf_token}, json={}, timeout=10).status_code == 404
    r = httpx.post(f"{rasa_stack.url}/agent/api/logout", cookies=cookies, timeout=10)
    assert r.status_code == 403 and a.get("/me").status_code == 200  # not signed out by a forged request

    # a bearer-token client carries no ambient credential: no CSRF token needed (nor given)
    token = login(rasa_stack, name, PASSWORD, fresh_address()).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.post(url, headers=bearer, json={}, timeout=10).status_code == 404
    assert "csrf_token" not in httpx.get(f"{rasa_stack.url}/agent/api/me", headers=bearer, timeout=10).json()

    assert a.post("/logout").status_code == 204
    assert a.get("/me").status_code == 401 and b.get("/me").status_code == 200


# ------------------------------------------------------------------------------------------------ sign-in limits
def test_an_account_locks_after_repeated_failures_whatever_the_address(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "lock")
    unknown = login(rasa_stack, f"nobody-{uuid.uuid4().hex[:6]}", "wrong password", fresh_address())
    for _ in range(MAX_FAILURES):
        r = login(rasa_stack, name, "wrong password", fresh_address())
        assert r.status_code == 401
        assert r.json() == unknown.json()  # never says whether the user or the password was wrong
    r = login(rasa_stack, name, PASSWORD, fresh_address())  # right password, new address: still locked
    assert r.status_code == 429 and "Too many sign-in attempts" in r.json()["error"]
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= LOCKOUT
    other = new_agent(handoff_db, "lock-other")
    assert login(rasa_stack, other, PASSWORD, fresh_address()).status_code == 200  # only that account
    time.sleep(wait + 0.5)
    assert login(rasa_stack, name, PASSWORD, fresh_address()).status_code == 200


def test_a_successful_sign_in_resets_the_account_count(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "reset")
    for _ in range(2):  # twice the account's budget of failures, with a success in between
        for _ in range(MAX_FAILURES - 1):
            assert login(rasa_stack, name, "wrong password", fresh_address()).status_code == 401
        assert login(rasa_stack, name, PASSWORD, fresh_address()).status_code == 200


def test_an_address_locks_after_failures_on_many_accounts(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "addr")
    address = fresh_address()
    for i in range(8):  # LOGIN_ADDRESS_MAX_FAILURES of the test stack, a different username each time
        assert login(rasa_stack, f"guess-{i}-{uuid.uuid4().hex[:6]}", "wrong password", address).status_code == 401
    r = login(rasa_stack, name, PASSWORD, address)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert login(rasa_stack, name, PASSWORD, fresh_address()).status_code == 200


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "xff")
    with from_peer("127.0.0.3") as untrusted:
        for i in range(8):  # a new made-up X-Forwarded-For every time: all counted against 127.0.0.3
            r = login(rasa_stack, f"guess-{i}-{uuid.uuid4().hex[:6]}", "wrong password", fresh_address(), client=untrusted)
            assert r.status_code == 401
        assert login(rasa_stack, name, PASSWORD, fresh_address(), client=untrusted).status_code == 429
    assert login(rasa_stack, name, PASSWORD, fresh_address()).status_code == 200


def test_a_login_flood_leaves_chats_answered_and_no_guess_beyond_the_limit(rasa_stack, handoff_db):
    target = new_agent(handoff_db, "flood")
    chat_replies, errors = [], []

    def chat() -> None:
        sender = f"flood-chat-{uuid.uuid4().hex[:8]}"
        try:
            for text in ("error 102 with chase", "what does error 102 mean", "error 102 with chase"):
                chat_replies.append(rasa_stack.send(sender, text))
        except Exception as exc:  # reported below
            errors.append(exc)

    talker = threading.Thread(target=chat)
    talker.start()
    attempts = [(target, "wrong password")] * 20 + [(f"nobody-{i}-{uuid.uuid4().hex[:4]}", "wrong password") for i in range(20)]
    random.shuffle(attempts)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda a: login(rasa_stack, a[0], a[1], fresh_address()), attempts))
    # right after the flood the account is locked: even the right password is turned away
    after_flood = login(rasa_stack, target, PASSWORD, fresh_address())
    flood_seconds = time.monotonic() - started
    talker.join(timeout=300)
    assert not talker.is_alive() and not errors, errors
    assert len(chat_replies) == 3 and all(chat_replies), chat_replies  # every chat message answered

    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {401, 429, 503}, statuses
    for r in answers:
        if r.status_code in (429, 503):
            assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]
    on_target = [r.status_code for (user, _), r in zip(attempts, answers) if user == target]
    assert on_target.count(401) <= MAX_FAILURES, on_target  # no guess past the account's budget
    assert 429 in on_target, on_target
    if flood_seconds < LOCKOUT - 1:  # (the lock-out starts during the flood and lasts LOCKOUT seconds)
        assert after_flood.status_code == 429, after_flood.text


# ------------------------------------------------------------------------------------------------ live events
class EventStream:
    """Reads a console event stream in a thread; ``ended`` is set when the server closes it."""

    def __init__(self, client: ConsoleClient):
        self.lines, self.status = [], None
        self.opened, self.ended = threading.Event(), threading.Event()
        self.client = client
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.opened.wait(30), "the stream did not open"

    def _run(self) -> None:
        try:
            with self.client.http.stream("GET", "/events", timeout=httpx.Timeout(30, read=60)) as resp:
                self.status = resp.status_code
                self.opened.set()
                for line in resp.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError as exc:
            self.lines.append(f"error: {exc!r}")
        finally:
            self.opened.set()
            self.ended.set()


def test_event_stream_ends_when_the_agent_is_deactivated(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "sse-off")
    stream = EventStream(ConsoleClient(rasa_stack.url, name, PASSWORD))
    assert stream.status == 200
    time.sleep(1.5)
    assert not stream.ended.is_set()
    handoff_db.agents.set_active(name, False)
    assert stream.ended.wait(20), "the stream stayed open for a deactivated agent"
    assert "event: session_ended" in stream.lines


def test_event_stream_ends_when_the_agent_signs_out(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "sse-out")
    agent = ConsoleClient(rasa_stack.url, name, PASSWORD)
    stream = EventStream(agent)
    assert stream.status == 200
    assert agent.post("/logout").status_code == 204
    assert stream.ended.wait(20), "the stream stayed open after sign-out"
    assert "event: session_ended" in stream.lines


def test_at_most_three_streams_per_agent(rasa_stack, handoff_db):
    name = new_agent(handoff_db, "sse-cap")
    agent = ConsoleClient(rasa_stack.url, name, PASSWORD)
    streams = [EventStream(agent) for _ in range(3)]
    assert [s.status for s in streams] == [200, 200, 200]
    r = agent.get("/events")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    other = ConsoleClient(rasa_stack.url, new_agent(handoff_db, "sse-cap2"), PASSWORD)
    extra = EventStream(other)  # the cap is per agent
    assert extra.status == 200
    handoff_db.agents.set_active(name, False)  # ends the three streams, which frees their slots
    for s in streams:
        assert s.ended.wait(20)
    handoff_db.agents.set_active(name, True)
    again = ConsoleClient(rasa_stack.url, name, PASSWORD)
    assert EventStream(again).status == 200
    other.post("/logout")
    again.post("/logout")


# ------------------------------------------------------------------------------------------------ cookies
def session_cookie(r: httpx.Response) -> str:
    return next(v for k, v in r.headers.multi_items() if k.lower() == "set-cookie" and v.startswith("agent_session="))


@pytest.mark.parametrize(
    "peer, forwarded_proto, secure",
    [
        ("127.0.0.2", None, False),  # plain http, straight from the client
        ("127.0.0.1", "https", True),  # our TLS proxy says the client used https
        ("127.0.0.2", "https", False),  # anybody else saying so is ignored
        ("127.0.0.1", None, False),  # the proxy over plain http
    ],
)
def test_session_cookie_flags(rasa_stack, handoff_db, peer, forwarded_proto, secure):
    name = new_agent(handoff_db, "cookie")
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    with from_peer(peer) as client:
        r = login(rasa_stack, name, PASSWORD, client=client, headers=headers)
    assert r.status_code == 200, r.text
    cookie = session_cookie(r).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/agent" in cookie
    assert ("; secure" in cookie) is secure, cookie


# ------------------------------------------------------------------------------------------------ API token
def test_api_token_is_not_on_the_command_line(rasa_stack):
    pid = rasa_stack.proc.proc.pid
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    assert "bot.server.serve" in cmdline and "--enable-api" in cmdline
    assert rasa_stack.token not in cmdline and "--auth-token" not in cmdline
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    for child in children:
        assert rasa_stack.token not in open(f"/proc/{child}/cmdline", "rb").read().decode(errors="replace")


def test_api_token_in_the_header_works_and_in_a_url_is_not_logged(rasa_stack):
    base, token = rasa_stack.url, rasa_stack.token
    assert httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    assert httpx.get(f"{base}/status", headers={"Authorization": "Bearer not-the-token-at-all"}, timeout=10).status_code == 401
    assert httpx.get(f"{base}/status", timeout=10).status_code == 401
    marker = uuid.uuid4().hex
    r = httpx.get(f"{base}/status", params={"token": token, "marker": marker}, timeout=10)
    assert r.status_code == 200  # still accepted, for old clients
    log = rasa_stack.dir / "rasa.log"
    deadline = time.monotonic() + 10
    while marker not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log.read_text(errors="replace")
    assert marker in text, "the access log did not record the request"
    assert token not in text
    assert "token=[removed]" in text
