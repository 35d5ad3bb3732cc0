"""The plain-Python parts of the console's and the server's trust boundaries, without a server:
trusted proxies, origin allow-lists, the CSRF token, the bounded pool, sign-in limits, the API token
launcher and log scrubbing. The same rules are tested end to end in tests/test_console_security.py."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time

import pytest

from bot import client_address, log_masking
from bot.server import api_token, serve
from bot.server.channels import cors, proxies
from bot.server.console import csrf
from bot.server.console.login_guard import GuardSettings, LoginGuard, storage_url
from bot.server.console.pool import BoundedPool, PoolBusy
from tests.servers import ROOT

TRUSTED = client_address.parse_networks("127.0.0.1, 10.0.0.0/8")


# ------------------------------------------------------------------ proxies
def test_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy():
    assert client_address.resolve("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"
    assert client_address.resolve("127.0.0.1", None, TRUSTED) == "127.0.0.1"
    assert client_address.resolve("127.0.0.1", "198.51.100.1", TRUSTED) == "198.51.100.1"
    # right-most untrusted hop: what the client wrote to the left proves nothing
    assert client_address.resolve("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", TRUSTED) == "198.51.100.1"
    assert client_address.resolve("127.0.0.1", "10.0.0.5, 10.0.0.6", TRUSTED) == "10.0.0.5"
    assert client_address.resolve("127.0.0.1", "garbage, 10.0.0.6", TRUSTED) == "10.0.0.6"
    assert client_address.resolve("::ffff:127.0.0.1", "198.51.100.1", TRUSTED) == "198.51.100.1"
    assert client_address.resolve("127.0.0.1", "[2001:db8::1]:4711", TRUSTED) == "2001:db8::1"
    assert client_address.resolve("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"  # nothing trusted by default


def test_https_only_from_tls_or_a_trusted_proxy():
    assert proxies.is_https("https", "203.0.113.9", None, TRUSTED)
    assert proxies.is_https("http", "127.0.0.1", "https", TRUSTED)
    assert proxies.is_https("http", "127.0.0.1", "HTTPS, http", TRUSTED)
    assert not proxies.is_https("http", "203.0.113.9", "https", TRUSTED)
    assert not proxies.is_https("http", "127.0.0.1", "http", TRUSTED)


def test_trusted_proxies_setting_is_checked():
    with pytest.raises(ValueError, match="not-an-ip"):
        client_address.parse_networks("127.0.0.1,not-an-ip")


# ------------------------------------------------------------------ origins
def test_origins_are_normalised_and_wildcards_refused():
    assert cors.normalize_origin("HTTPS://Shop.Example.com:443/") == "https://shop.example.com"
    assert cors.normalize_origin("http://localhost:5005") == "http://localhost:5005"
    for bad in ("*", "shop.example.com", "ftp://x.example", "https://x.example/path", "https://u:p@x.example", "https://"):
        with pytest.raises(ValueError):
            cors.normalize_origin(bad)
    with pytest.raises(ValueError, match="CHAT_ALLOWED_ORIGINS"):
        cors.parse_origins("https://a.example, *")
    policy = cors.ChatOrigins.from_env({"CHAT_ALLOWED_ORIGINS": "https://a.example, https://b.example:8443"})
    assert policy.allows("https://a.example") and policy.allows("https://b.example:8443")
    assert not policy.allows("https://b.example") and not policy.allows("null") and not policy.allows(None)
    assert not policy.allows("https://a.example.evil.net")


def test_route_kinds():
    assert cors.route_kind("/webhooks/rest/webhook") == "chat"
    assert cors.route_kind("/chat/history") == "chat" and cors.route_kind("/upload/analyse") == "chat"
    assert cors.route_kind("/socket.io/") == "socket"
    assert cors.route_kind("/chat/widget.js") == "public" and cors.route_kind("/status/outages") == "public"
    for private in ("/agent/api/login", "/agent/", "/status", "/conversations/x/tracker", "/webhooks/slack/webhook", "/"):
        assert cors.route_kind(private) == "private", private


# ------------------------------------------------------------------ CSRF
def test_csrf_token_is_bound_to_its_session():
    a, b = "session-token-a", "session-token-b"
    assert csrf.valid(a, csrf.token_for(a))
    assert not csrf.valid(a, csrf.token_for(b))
    assert not csrf.valid(a, None) and not csrf.valid(None, csrf.token_for(a)) and not csrf.valid(a, "")
    assert not csrf.valid(a, csrf.token_for(a) + "x") and not csrf.valid(a, "é" * 10)
    assert a not in csrf.token_for(a)


# ------------------------------------------------------------------ bounded pool
def test_pool_refuses_work_beyond_its_capacity_at_once():
    pool = BoundedPool(workers=1, queue=2)
    release = threading.Event()

    async def scenario():
        running = [asyncio.ensure_future(pool.run(release.wait, 10)) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert pool.pending == 3
        with pytest.raises(PoolBusy):
            await pool.run(time.sleep, 0)
        release.set()
        assert await asyncio.gather(*running) == [True, True, True]
        assert pool.pending == 0
        assert await pool.run(lambda: threading.current_thread().name) != threading.current_thread().name

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        pool.shutdown()


# ------------------------------------------------------------------ sign-in limits
def test_account_budget_is_counted_before_the_check_and_reset_by_a_success():
    guard = LoginGuard(GuardSettings(account_max_failures=3, address_max_failures=100, failure_window=60, lockout=30))
    assert [guard.begin("dana", f"10.0.0.{i}") for i in range(3)] == [None, None, None]  # three in flight
    assert guard.begin("dana", "10.0.0.9") == 30  # the fourth concurrent guess never reaches the password
    assert guard.locked_for("dana", "10.9.9.9") == 30  # whatever the address
    assert guard.locked_for("lee", "10.0.0.1") is None

    guard = LoginGuard(GuardSettings(account_max_failures=3, address_max_failures=100, failure_window=60, lockout=30))
    for _ in range(2):
        assert guard.begin("lee", "10.0.0.1") is None
        guard.failed("lee", "10.0.0.1")
    assert guard.begin("lee", "10.0.0.1") is None
    guard.succeeded("lee")
    for _ in range(2):
        assert guard.begin("lee", "10.0.0.1") is None
        guard.failed("lee", "10.0.0.1")
    assert guard.locked_for("lee", "10.0.0.1") is None


def test_retry_after_never_sends_the_person_back_while_still_locked():
    # The lock's end is kept to the fraction of a second, its storages report it in whole seconds: locked
    # just before a second turns over and asked a while later, a truncated end said "1" where 1.7 s were
    # left (the console test saw a retry at Retry-After refused again in CI).
    guard = LoginGuard(GuardSettings(account_max_failures=1, address_max_failures=100, failure_window=60, lockout=2))
    while time.time() % 1 < 0.85:
        time.sleep(0.01)
    assert guard.begin("erin", "198.51.100.9") is None
    guard.failed("erin", "198.51.100.9")  # locked, at x.85 or later
    time.sleep(0.3)  # the next attempt comes past the turn of the second
    wait = guard.begin("erin", "198.51.100.9")
    assert wait is not None and 1 <= wait <= 2
    time.sleep(wait)
    assert guard.locked_for("erin", "198.51.100.9") is None


def test_an_address_is_locked_after_failures_across_accounts():
    guard = LoginGuard(GuardSettings(account_max_failures=5, address_max_failures=3, failure_window=60, lockout=20))
    for i in range(3):
        assert guard.begin(f"user{i}", "192.0.2.7") is None
        guard.failed(f"user{i}", "192.0.2.7")
    assert guard.begin("dana", "192.0.2.7") == 20
    assert guard.begin("dana", "192.0.2.8") is None


def test_guard_settings_and_storage_from_the_environment():
    s = GuardSettings.from_env({"LOGIN_MAX_FAILURES": "7", "LOGIN_LOCKOUT_SECONDS": "60"})
    assert (s.account_max_failures, s.lockout, s.address_max_failures, s.failure_window) == (7, 60, 20, 900)
    for bad in ({"LOGIN_MAX_FAILURES": "lots"}, {"LOGIN_LOCKOUT_SECONDS": "0"}):
        with pytest.raises(ValueError):
            GuardSettings.from_env(bad)
    assert storage_url({}) == "memory://"
    assert (
        storage_url({"REDIS_HOST": "redis", "REDIS_PASSWORD": "p@ss/word", "REDIS_DB": "2"})
        == "redis://:p%40ss%2Fword@redis:6379/2"
    )
    assert storage_url({"RATE_LIMIT_STORAGE_URL": "redis://other:1/0", "REDIS_HOST": "redis"}) == "redis://other:1/0"


def test_counts_are_shared_through_redis():
    """Two guards on one Redis (two replicas) see the same lock-out."""
    import redis

    url = "redis://127.0.0.1:6379/1"
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings = GuardSettings(account_max_failures=2, address_max_failures=100, failure_window=60, lockout=5)
    one, two = LoginGuard(settings, url), LoginGuard(settings, url)
    account = f"shared-{time.time_ns()}"
    for guard in (one, two):
        assert guard.begin(account, "192.0.2.1") is None
        guard.failed(account, "192.0.2.1")
    assert one.locked_for(account, "192.0.2.2") and two.locked_for(account, "192.0.2.3")


# ------------------------------------------------------------------ API token and the launcher
def test_token_sources(tmp_path):
    assert api_token.read_token({}) is None
    assert api_token.read_token({"RASA_API_TOKEN": "t" * 20}) == "t" * 20
    path = tmp_path / "token"
    path.write_text("f" * 24 + "\n")
    assert api_token.read_token({"RASA_API_TOKEN_FILE": str(path)}) == "f" * 24
    for env in (
        {"RASA_API_TOKEN": "short"},
        {"RASA_API_TOKEN": "has a space in it....."},
        {"RASA_API_TOKEN_FILE": str(tmp_path / "missing")},
    ):
        with pytest.raises(api_token.TokenError):
            api_token.read_token(env)


def test_launcher_keeps_the_token_out_of_argv():
    token = "x" * 32
    argv = serve.rasa_argv(["run", "--enable-api", "--port", "5005"], token)
    assert argv == ["rasa", "run", "--enable-api", "--port", "5005", f"--auth-token={token}"]
    for bad in (["run", "--auth-token", token], ["run", f"--auth-token={token}"], ["run", "--cors", "*"]):
        with pytest.raises(ValueError):
            serve.rasa_argv(bad, token)
    with pytest.raises(ValueError, match="needs a token"):
        serve.rasa_argv(["run", "--enable-api"], None)


def test_launcher_refuses_an_open_api():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "bot.server.serve", "run", "--enable-api"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "RASA_API_TOKEN" in r.stderr


# ------------------------------------------------------------------ log scrubbing
def test_tokens_in_urls_are_scrubbed_from_log_records(caplog):
    log_masking.install()
    secret = "s3cr3t-token-value"
    logger = logging.getLogger("tests.logscrub")
    with caplog.at_level(logging.INFO):
        logger.info("GET %s", f"http://x/status?token={secret}&a=1")
        logger.info("GET http://x/status?a=1&access_token=%s", secret)
        logging.getLogger("sanic.access").info(
            "", extra={"request": f"GET http://x/?token={secret}", "host": "h", "status": 200, "byte": 1}
        )
    assert secret not in caplog.text
    assert all(secret not in str(getattr(r, "request", "")) for r in caplog.records)
    assert "token=[removed]&a=1" in caplog.text
    assert log_masking.scrub_url_tokens("/x?tokenizer=1&q=token") == "/x?tokenizer=1&q=token"
