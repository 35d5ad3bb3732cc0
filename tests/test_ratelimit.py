"""Per-client rate limits (bot/ratelimit.py) on memory, on the local Redis and on SQLite, the real client address
behind trusted proxies (bot/client_address.py), and the outage desk's per-client report limit."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from bot import client_address, ratelimit
from bot.ratelimit import RateLimiter, configured_limits, parse_limits

REDIS = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ configuration
def test_defaults_settings_file_and_environment():
    limits = configured_limits({}, {})
    assert set(limits) == set(ratelimit.DEFAULT_LIMITS)
    assert [str(i) for i in limits["chat_per_sender"]] == ["15 per 10 second", "60 per 1 minute"]
    limits = configured_limits(
        {"chat_per_address": "10/minute"}, {"RATE_LIMIT_CHAT_PER_ADDRESS": "7/second", "RATE_LIMIT_UPLOADS_PER_ADDRESS": "off"}
    )
    assert [str(i) for i in limits["chat_per_address"]] == ["7 per 1 second"]
    assert limits["uploads_per_address"] == ()
    assert all(v == () for v in configured_limits({}, {"RATE_LIMITS": "off"}).values())
    with pytest.raises(ValueError, match="chat_per_sender"):
        configured_limits({"chat_per_sender": "lots"}, {})
    with pytest.raises(ValueError, match="unknown rate_limits"):
        configured_limits({"chat_per_sendr": "1/minute"}, {})
    assert ratelimit.storage_url({}, {}) == "memory://"
    assert ratelimit.storage_url({}, {"RATE_LIMIT_STORAGE_URL": REDIS}) == REDIS


def test_the_settings_file_section_is_valid():
    from bot.settings import load_settings

    section = load_settings()["rate_limits"]
    assert configured_limits(section, {}) == configured_limits({}, {})  # the file states the defaults


# ------------------------------------------------------------------ counting
@pytest.fixture(params=["memory", "redis", "sqlite"])
def limiter(request, tmp_path):
    limits = {
        name: parse_limits(v)
        for name, v in {
            "chat_per_sender": "3/10seconds;5/minute",
            "chat_per_address": "4/minute",
            "upload_bytes_per_address": "1000/hour",
        }.items()
    }
    if request.param == "memory":
        yield RateLimiter(limits)
    elif request.param == "sqlite":  # the counts every process of one machine shares (bot/ratelimit_sqlite.py)
        limiter = RateLimiter(limits, f"sqlite:///{tmp_path / 'ratelimits.db'}")
        yield limiter
        assert limiter._fallback_until == 0, "SQLite did not answer: the counts were kept in memory"
    else:
        limiter = RateLimiter(limits, REDIS)
        ratelimit.KEY_PREFIX, saved = f"test-{secrets.token_hex(4)}", ratelimit.KEY_PREFIX
        try:
            yield limiter
            assert limiter._fallback_until == 0, "Redis did not answer: the counts were kept in memory"
        finally:
            ratelimit.KEY_PREFIX = saved


def test_a_sender_over_the_limit_is_refused_with_a_wait_and_others_are_not(limiter):
    assert all(limiter.hit("chat_per_sender", "alice").allowed for _ in range(3))
    refused = limiter.hit("chat_per_sender", "alice")
    assert not refused.allowed and refused.limit == "chat_per_sender" and 1 <= refused.retry_after <= 10
    assert "wait" in refused.message() and "send that message again" in refused.message()
    assert limiter.hit("chat_per_sender", "bob").allowed  # per sender


def test_bytes_are_a_budget_and_a_refused_upload_costs_nothing(limiter):
    assert limiter.hit("upload_bytes_per_address", "203.0.113.5", cost=600).allowed
    refused = limiter.hit("upload_bytes_per_address", "203.0.113.5", cost=600)
    assert not refused.allowed and refused.retry_after > 60
    assert limiter.hit("upload_bytes_per_address", "203.0.113.5", cost=400).allowed  # the refused 600 was not counted
    assert not limiter.hit("upload_bytes_per_address", "203.0.113.5", cost=1).allowed


async def test_check_all_stops_at_the_first_refusal(limiter):
    for i in range(4):
        assert (await limiter.check_all(ratelimit.chat_checks(f"s{i}", "198.51.100.1"))).allowed
    decision = await limiter.check_all(ratelimit.chat_checks("s9", "198.51.100.1"))
    assert not decision.allowed and decision.limit == "chat_per_address"
    body = ratelimit.too_many_body(decision)
    assert body["retry_after"] == decision.retry_after and ratelimit.too_many_headers(decision)["Retry-After"]


def test_redis_counts_are_shared_by_every_replica():
    limits = {"chat_per_sender": parse_limits("2/minute")}
    one, two = RateLimiter(limits, REDIS), RateLimiter(limits, REDIS)
    sender = f"shared-{secrets.token_hex(4)}"
    assert one.hit("chat_per_sender", sender).allowed and two.hit("chat_per_sender", sender).allowed
    assert not one.hit("chat_per_sender", sender).allowed and not two.hit("chat_per_sender", sender).allowed
    assert one._fallback_until == two._fallback_until == 0


def test_when_redis_does_not_answer_the_replica_counts_in_memory():
    clock = Clock()
    limiter = RateLimiter({"chat_per_sender": parse_limits("2/minute")}, "redis://127.0.0.1:1/0", clock=clock)
    assert limiter.hit("chat_per_sender", "x").allowed and limiter.hit("chat_per_sender", "x").allowed
    assert not limiter.hit("chat_per_sender", "x").allowed  # still limited, in this process
    assert limiter._fallback_until > clock.now


def test_limits_can_be_off():
    limiter = RateLimiter({"chat_per_sender": ()})
    assert all(limiter.hit("chat_per_sender", "x").allowed for _ in range(100))
    with pytest.raises(KeyError):
        limiter.hit("no_such_limit", "x")


# ------------------------------------------------------------------ client address
NETS = client_address.parse_networks("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    "peer, header, expected",
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not from a proxy: the header is ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),  # nginx on this machine
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's own entry is not believed
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),  # two trusted hops
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # only proxies: the last one
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("::1", "2001:db8::5", "2001:db8::5"),
        ("::ffff:127.0.0.1", "198.51.100.2", "198.51.100.2"),
        ("", "198.51.100.1", "unknown"),
    ],
)
def test_client_address_behind_trusted_proxies(peer, header, expected):
    assert client_address.resolve(peer, header, NETS) == expected


def test_no_trusted_proxies_by_default_and_bad_settings_are_named():
    assert client_address.resolve("127.0.0.1", "198.51.100.1", client_address.trusted_proxies({})) == "127.0.0.1"
    with pytest.raises(ValueError, match="nginx"):
        client_address.parse_networks("127.0.0.1,nginx")


def test_client_key_is_a_stable_pseudonym():
    key = client_address.client_key("198.51.100.1", {})
    assert key == client_address.client_key("198.51.100.1", {}) != client_address.client_key("198.51.100.2", {})
    assert "198" not in key and len(key) == 20
    assert client_address.client_key("198.51.100.1", {"CLIENT_KEY_SALT": "other"}) != key


# ------------------------------------------------------------------ outage reports per client
def test_a_client_over_its_report_limit_is_not_counted(tmp_path, monkeypatch):
    from bot.db.engine import Database
    from bot.desk import ActionServices
    from bot.outages.desk import OutageDesk

    store = Database(f"sqlite:///{tmp_path / 'p.db'}")
    store.migrate()
    services = ActionServices(store, limiter=RateLimiter({"outage_reports_per_address": parse_limits("2/hour")}))

    async def scenario():
        for i in range(5):  # one client, five conversations
            await OutageDesk(services, f"rest-{i}", "rest", client_key="k-office").record_report("Chase", "bank_unavailable")
        await OutageDesk(services, "slack-1", "slack").record_report("Chase", "bank_unavailable")

    try:
        asyncio.run(scenario())
        from sqlalchemy import select

        from bot.db.models import BankSignal

        with store.reading() as s:
            rows = s.execute(
                select(BankSignal.conversation_id, BankSignal.verified, BankSignal.client_key).order_by(BankSignal.id)
            ).all()
        assert rows == [("rest-0", False, "k-office"), ("rest-1", False, "k-office"), ("slack-1", True, None)]
    finally:
        store.dispose()
