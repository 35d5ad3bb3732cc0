"""Tests for bot.banks.site_prober against real HTTP(S) servers on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time

import pytest
import pytest_asyncio

from bot.banks.site_prober import ProbeResult, ProbeSettings, SiteProber, has_maintenance_wording
from bot.outbound import OutboundPolicy
from tests.bank_sites import FakeBankSite, refused_url

UNREACHABLE_CANARIES = ("https://canary.invalid/",)
# These tests play banks on 127.0.0.1 (any port): an explicit exception to the outbound policy, which
# refuses loopback by default (see test_outbound_policy_* below and tests/test_outbound.py).
LOCAL = OutboundPolicy(allow=("127.0.0.1",))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site():
    with FakeBankSite() as s:
        yield s


@pytest.fixture(scope="module")
def tls_site():
    with FakeBankSite(tls=True) as s:
        yield s


@pytest.fixture
def canary(site):
    """Canary pointing at the local healthy server: 'we have connectivity'."""
    return (site.url("/canary/healthy"),)


def make_settings(**overrides) -> ProbeSettings:
    base = dict(
        connect_timeout=1.0, read_timeout=1.5, budget=2.0, slow_threshold=1.0, canary_urls=UNREACHABLE_CANARIES, outbound=LOCAL
    )
    base.update(overrides)
    return ProbeSettings(**base)


@pytest_asyncio.fixture
async def make_prober():
    probers = []

    def factory(settings=None, **kw):
        p = SiteProber(settings or make_settings(), **kw)
        probers.append(p)
        return p

    yield factory
    for p in probers:
        await p.aclose()


def unique(path: str) -> str:
    """A fresh path per test so module-scoped server hit counts don't interfere."""
    unique.n += 1
    return f"/t{unique.n}{path}"


unique.n = 0


# --------------------------------------------------------------------------- classification


@pytest.mark.asyncio
async def test_healthy_is_up(site, make_prober, canary):
    path = unique("/healthy")
    r = await make_prober(make_settings(canary_urls=canary)).check("bank", site.url(path))
    assert (r.status, r.reason, r.http_status) == ("up", "ok", 200)
    assert r.from_cache is False and r.retry_after is None
    assert r.final_url == site.url(path)
    assert 0 <= r.elapsed_ms < 1000
    assert abs(r.checked_at - time.time()) < 5
    assert site.hits(path) == 1
    assert site.hits(canary[0]) == 0, "canary must not run when the bank answers"


@pytest.mark.asyncio
async def test_503_with_retry_after_is_maintenance(site, make_prober):
    path = unique("/maintenance")
    r = await make_prober().check("bank", site.url(path) + "?retry=120")
    assert (r.status, r.http_status, r.retry_after) == ("maintenance", 503, "120")
    assert r.reason == "maintenance_page"


@pytest.mark.asyncio
async def test_503_with_only_retry_after_is_maintenance(site, make_prober):
    # a normal page with no maintenance wording: the Retry-After header alone decides.
    r = await make_prober().check("bank", site.url(unique("/status")) + "?code=503&retry=120")
    assert (r.status, r.reason, r.http_status, r.retry_after) == ("maintenance", "retry_after", 503, "120")


@pytest.mark.asyncio
async def test_plain_503_is_down(site, make_prober):
    r = await make_prober().check("bank", site.url(unique("/unavailable")))
    assert (r.status, r.reason, r.http_status, r.retry_after) == ("down", "http_503", 503, None)


@pytest.mark.asyncio
async def test_200_with_maintenance_wording_is_maintenance(site, make_prober):
    r = await make_prober().check("bank", site.url(unique("/maintenance-200")))
    assert (r.status, r.reason, r.http_status) == ("maintenance", "maintenance_page", 200)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode,code", [("error500", 500), ("error502", 502)])
async def test_5xx_is_down(site, make_prober, mode, code):
    r = await make_prober().check("bank", site.url(unique("/" + mode)))
    assert (r.status, r.reason, r.http_status) == ("down", f"http_{code}", code)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path,code", [("/forbidden", 403), ("/notfound", 404), ("/status?code=401", 401), ("/status?code=429", 429)]
)
async def test_4xx_means_site_is_answering(site, make_prober, path, code):
    r = await make_prober().check("bank", site.url(unique(path)))
    assert (r.status, r.reason, r.http_status) == ("up", f"http_{code}", code)


@pytest.mark.asyncio
async def test_slow_answer_is_slow(site, make_prober):
    prober = make_prober(make_settings(slow_threshold=0.2))
    r = await prober.check("bank", site.url(unique("/slow")) + "?delay=0.5")
    assert (r.status, r.reason, r.http_status) == ("slow", "slow_response", 200)
    assert r.elapsed_ms >= 450


@pytest.mark.asyncio
async def test_slow_maintenance_stays_maintenance(site, make_prober):
    path = unique("/x")
    site.set_mode(path, "maintenance")
    prober = make_prober(make_settings(slow_threshold=0.000001))
    r = await prober.check("bank", site.url(path))
    assert r.status == "maintenance"


@pytest.mark.asyncio
async def test_redirects_are_followed(site, make_prober):
    base = unique("")
    r = await make_prober().check("bank", site.url(base + "/redirect?token=secret"))
    assert (r.status, r.http_status) == ("up", 200)
    assert r.final_url == site.url(base + "/healthy")
    assert site.hits(base + "/redirect") == 1 and site.hits(base + "/healthy") == 1


@pytest.mark.asyncio
async def test_redirect_to_maintenance_page(site, make_prober):
    base = unique("")
    r = await make_prober().check("bank", site.url(base + f"/redirect?to={base}/maintenance-200"))
    assert r.status == "maintenance" and r.final_url == site.url(base + "/maintenance-200")


@pytest.mark.asyncio
async def test_redirect_loop_is_unknown(site, make_prober):
    path = unique("/redirect-loop")
    r = await make_prober(make_settings(max_redirects=3)).check("bank", site.url(path))
    assert (r.status, r.reason) == ("unknown", "too_many_redirects")
    assert site.hits(path) == 4  # first request + 3 redirects


@pytest.mark.asyncio
async def test_user_agent_and_accept_sent(site, make_prober):
    path = unique("/healthy")
    settings = make_settings(user_agent="QBO-Test-Agent/9.9")
    await make_prober(settings).check("bank", site.url(path))
    headers = site.last_headers(path)
    assert headers["User-Agent"] == "QBO-Test-Agent/9.9"
    assert "text/html" in headers["Accept"]


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["", "   ", "not a url", "ftp://bank.example/", "https://", "http://exa mple.com/", None, 42])
async def test_invalid_url_is_unknown(make_prober, url):
    r = await make_prober().check("bank", url)
    assert (r.status, r.reason) == ("unknown", "invalid_url")


# --------------------------------------------------------------------------- network failures


@pytest.mark.asyncio
async def test_hanging_site_is_unknown_within_budget(site, make_prober, canary):
    path = unique("/hang")
    prober = make_prober(make_settings(budget=1.0, connect_timeout=5.0, read_timeout=5.0, canary_urls=canary))
    t0 = time.perf_counter()
    r = await prober.check("bank", site.url(path))
    took = time.perf_counter() - t0
    assert (r.status, r.reason) == ("unknown", "timeout")
    assert 0.8 <= took < 2.0, took
    assert site.hits(path) == 1


@pytest.mark.asyncio
async def test_read_timeout_is_unknown_not_down(site, make_prober, canary):
    # read_timeout fires before the budget; the canary answers -> still "unknown" (never "down").
    prober = make_prober(make_settings(budget=2.0, read_timeout=0.3, canary_urls=canary))
    t0 = time.perf_counter()
    r = await prober.check("bank", site.url(unique("/hang")))
    assert (r.status, r.reason) == ("unknown", "timeout")
    assert time.perf_counter() - t0 < 1.5


@pytest.mark.asyncio
async def test_refused_is_down_when_canary_answers(site, make_prober, canary):
    r = await make_prober(make_settings(canary_urls=canary)).check("bank", refused_url())
    assert (r.status, r.reason, r.http_status) == ("down", "connection_refused", None)
    assert site.hits(canary[0]) >= 1


@pytest.mark.asyncio
async def test_refused_is_unknown_without_outbound_connectivity(make_prober):
    settings = make_settings(canary_urls=(refused_url(), refused_url("/x"), "https://canary.invalid/"))
    t0 = time.perf_counter()
    r = await make_prober(settings).check("bank", refused_url())
    assert (r.status, r.reason) == ("unknown", "no_outbound_connectivity")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.asyncio
async def test_one_answering_canary_is_enough(site, make_prober, canary):
    settings = make_settings(canary_urls=("https://canary.invalid/", refused_url(), canary[0]))
    r = await make_prober(settings).check("bank", refused_url())
    assert (r.status, r.reason) == ("down", "connection_refused")


@pytest.mark.asyncio
async def test_canary_answering_with_error_status_counts(site, make_prober):
    settings = make_settings(canary_urls=(site.url(unique("/error500")),))
    r = await make_prober(settings).check("bank", refused_url())
    assert r.status == "down"


@pytest.mark.asyncio
async def test_bad_tls_is_down(tls_site, make_prober, canary):
    r = await make_prober(make_settings(canary_urls=canary)).check("bank", tls_site.url("/healthy"))
    assert (r.status, r.reason) == ("down", "tls_error")


@pytest.mark.asyncio
async def test_tls_without_verification_is_up(tls_site, make_prober):
    r = await make_prober(make_settings(verify_tls=False)).check("bank", tls_site.url(unique("/healthy")))
    assert (r.status, r.reason, r.http_status) == ("up", "ok", 200)
    assert r.final_url.startswith("https://127.0.0.1:")


@pytest.mark.asyncio
async def test_dns_failure_is_down_when_canary_answers(make_prober, canary):
    r = await make_prober(make_settings(canary_urls=canary)).check("bank", "https://bank.invalid/")
    assert (r.status, r.reason) == ("down", "dns_failure")


def _internet_resolves() -> bool:
    try:
        socket.getaddrinfo("www.google.com", 443)
        return True
    except OSError:
        return False


@pytest.mark.asyncio
async def test_dns_failure_with_default_canaries_is_unknown(make_prober):
    if _internet_resolves():
        pytest.skip("this machine can resolve the default canaries; test needs a locked-down network")
    prober = make_prober(ProbeSettings())  # the real defaults
    t0 = time.perf_counter()
    r = await prober.check("bank", "https://bank.invalid/")
    assert (r.status, r.reason) == ("unknown", "no_outbound_connectivity")
    assert time.perf_counter() - t0 < ProbeSettings().budget


@pytest.mark.asyncio
async def test_server_dropping_connection_is_down(site, make_prober, canary):
    r = await make_prober(make_settings(canary_urls=canary)).check("bank", site.url(unique("/drop")))
    assert (r.status, r.reason) == ("down", "protocol_error")


@pytest.mark.asyncio
async def test_canary_verdict_is_cached_and_coalesced(site, make_prober):
    canary_path = unique("/slow")
    settings = make_settings(canary_urls=(site.url(canary_path) + "?delay=0.2",))
    prober = make_prober(settings)
    results = await asyncio.gather(*(prober.check(f"bank{i}", refused_url()) for i in range(20)))
    assert {r.status for r in results} == {"down"}
    assert site.hits(canary_path) == 1
    await prober.check("another", refused_url())
    assert site.hits(canary_path) == 1


@pytest.mark.asyncio
async def test_empty_canary_list_trusts_the_failure(make_prober):
    r = await make_prober(make_settings(canary_urls=())).check("bank", refused_url())
    assert (r.status, r.reason) == ("down", "connection_refused")


# --------------------------------------------------------------------------- cache and coalescing


@pytest.mark.asyncio
async def test_cache_hit_and_expiry_with_fake_clock(site, make_prober):
    now = [1000.0]
    path = unique("/healthy")
    prober = make_prober(make_settings(cache_ttl=60.0), clock=lambda: now[0])
    url = site.url(path)

    first = await prober.check("bank", url)
    now[0] += 30
    second = await prober.check("bank", url)
    assert first.from_cache is False and second.from_cache is True
    assert second.status == "up" and second.checked_at == first.checked_at
    assert site.hits(path) == 1

    site.set_mode(path, "error500")  # the bank breaks, but the cached answer stands until the TTL
    now[0] += 29.9
    assert (await prober.check("bank", url)).status == "up"
    assert site.hits(path) == 1

    now[0] += 0.2  # 60.1 s after the first probe
    third = await prober.check("bank", url)
    assert (third.status, third.from_cache) == ("down", False)
    assert site.hits(path) == 2
    site.set_mode(path, None)


@pytest.mark.asyncio
async def test_cache_is_per_key_and_per_url(site, make_prober):
    path = unique("/healthy")
    prober = make_prober()
    await prober.check("a", site.url(path))
    await prober.check("b", site.url(path))
    assert site.hits(path) == 2
    other = unique("/healthy")
    r = await prober.check("a", site.url(other))  # same key, different URL -> not served from cache
    assert r.from_cache is False and site.hits(other) == 1


@pytest.mark.asyncio
async def test_cache_ttl_zero_disables_cache(site, make_prober):
    path = unique("/healthy")
    prober = make_prober(make_settings(cache_ttl=0))
    await prober.check("bank", site.url(path))
    r = await prober.check("bank", site.url(path))
    assert r.from_cache is False and site.hits(path) == 2


@pytest.mark.asyncio
async def test_failures_are_cached_too(make_prober, canary):
    prober = make_prober(make_settings(canary_urls=canary))
    url = refused_url()
    await prober.check("bank", url)
    r = await prober.check("bank", url)
    assert (r.status, r.from_cache) == ("down", True)


@pytest.mark.asyncio
async def test_thousand_concurrent_checks_share_one_request(site, make_prober):
    path = unique("/slow")
    # generous time limits: this is about sharing one request, and on a loaded machine scheduling a
    # thousand callers can outlast the production budget (CI once saw timeouts before any connection)
    prober = make_prober(make_settings(slow_threshold=5.0, connect_timeout=15.0, read_timeout=15.0, budget=30.0))
    url = site.url(path) + "?delay=0.3"
    results = await asyncio.gather(*(prober.check("bank", url) for _ in range(1000)))
    assert site.hits(path) == 1
    assert len(results) == 1000
    # callers that joined while the request ran share its result; on a loaded machine the last of the
    # thousand may only start once it has ended, and get the same result from the cache
    fresh = [r for r in results if not r.from_cache]
    assert fresh and fresh[0] is results[0] and all(r == fresh[0] for r in fresh)
    assert all(dataclasses.replace(r, from_cache=False) == fresh[0] for r in results)
    assert results[0].status == "up"
    again = await prober.check("bank", url)
    assert again.from_cache is True and site.hits(path) == 1


@pytest.mark.asyncio
async def test_cancelled_caller_does_not_break_others(site, make_prober):
    path = unique("/slow")
    prober = make_prober(make_settings(slow_threshold=5.0))
    url = site.url(path) + "?delay=0.4"
    first = asyncio.create_task(prober.check("bank", url))  # this caller starts the shared probe
    await asyncio.sleep(0.05)
    others = [asyncio.create_task(prober.check("bank", url)) for _ in range(10)]
    await asyncio.sleep(0.05)
    first.cancel()
    others[3].cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    results = await asyncio.gather(*(t for i, t in enumerate(others) if i != 3))
    assert [r.status for r in results] == ["up"] * 9
    assert site.hits(path) == 1
    # the shared probe completed and was cached despite its creator being cancelled
    assert (await prober.check("bank", url)).from_cache is True
    assert site.hits(path) == 1


@pytest.mark.asyncio
async def test_different_keys_are_probed_independently(site, make_prober):
    prober = make_prober(make_settings(slow_threshold=5.0))
    paths = [unique("/slow") for _ in range(5)]
    results = await asyncio.gather(*(prober.check(f"bank{i}", site.url(p) + "?delay=0.2") for i, p in enumerate(paths)))
    assert all(r.status == "up" for r in results)
    assert [site.hits(p) for p in paths] == [1] * 5


@pytest.mark.asyncio
async def test_aclose_then_reuse(site, make_prober):
    prober = make_prober()
    assert (await prober.check("a", site.url(unique("/healthy")))).status == "up"
    await prober.aclose()
    assert (await prober.check("b", site.url(unique("/healthy")))).status == "up"


@pytest.mark.asyncio
async def test_aclose_during_probe_gives_result_not_exception(site, make_prober):
    prober = make_prober(make_settings(budget=3.0, read_timeout=5.0))
    task = asyncio.create_task(prober.check("bank", site.url(unique("/hang"))))
    await asyncio.sleep(0.1)
    await prober.aclose()
    r = await asyncio.wait_for(task, 1.0)
    assert (r.status, r.reason) == ("unknown", "cancelled")


# --------------------------------------------------------------------------- logging


@pytest.mark.asyncio
async def test_logs_key_status_reason_but_no_query_string(site, make_prober, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.banks.site_prober")
    path = unique("/healthy")
    await make_prober().check("chase", site.url(path) + "?session=SECRET123")
    records = [r for r in caplog.records if r.name == "bot.banks.site_prober"]
    text = "\n".join(r.getMessage() for r in records)
    assert "key=chase" in text and "status=up" in text and "reason=ok" in text and "elapsed_ms=" in text
    assert "SECRET123" not in text and "session=" not in text


@pytest.mark.asyncio
async def test_final_url_has_no_query_string(site, make_prober):
    r = await make_prober().check("bank", site.url(unique("/healthy")) + "?token=abc#frag")
    assert r.final_url is not None and "token" not in r.final_url and "#" not in r.final_url


# --------------------------------------------------------------------------- settings / result


def test_from_mapping_rejects_unknown_keys():
    with pytest.raises(ValueError, match="budgett"):
        ProbeSettings.from_mapping({"budget": 2.0, "budgett": 3.0})


def test_from_mapping_converts_lists_and_keeps_defaults():
    s = ProbeSettings.from_mapping({"budget": 2, "canary_urls": ["http://a/", "http://b/"], "verify_tls": False})
    assert s.budget == 2.0 and isinstance(s.budget, float)
    assert s.canary_urls == ("http://a/", "http://b/")
    assert s.verify_tls is False
    assert s.read_timeout == ProbeSettings().read_timeout
    assert ProbeSettings.from_mapping({}) == ProbeSettings()
    assert ProbeSettings.from_mapping(None) == ProbeSettings()
    hash(s)  # frozen + tuples -> hashable


@pytest.mark.parametrize(
    "bad",
    [
        {"budget": 0},
        {"budget": -1},
        {"budget": "3"},
        {"connect_timeout": True},
        {"cache_ttl": -5},
        {"max_redirects": 1.5},
        {"canary_urls": "https://x/"},
        {"canary_urls": [1]},
        {"verify_tls": "no"},
        {"user_agent": ""},
        {"slow_threshold": float("nan")},
    ],
)
def test_from_mapping_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ProbeSettings.from_mapping(bad)


def test_from_mapping_rejects_non_mapping():
    with pytest.raises(ValueError):
        ProbeSettings.from_mapping(["budget", 3])  # type: ignore[arg-type]


def test_probe_result_round_trip():
    r = ProbeResult(
        status="maintenance",
        url="https://b/",
        reason="retry_after",
        http_status=503,
        elapsed_ms=12,
        checked_at=1700000000.5,
        retry_after="60",
        final_url="https://b/m",
    )
    d = r.to_dict()
    assert d["status"] == "maintenance" and d["from_cache"] is False
    assert ProbeResult.from_dict(d) == r
    assert ProbeResult.from_dict({**d, "future_field": 1}) == r
    with pytest.raises(ValueError):
        ProbeResult.from_dict({**d, "status": "broken"})
    with pytest.raises(ValueError):
        ProbeResult.from_dict({"status": "up"})


@pytest.mark.parametrize(
    "text,expected",
    [
        ("We are down for scheduled maintenance", True),
        ("Online Banking is UNDER MAINTENANCE", True),
        ("We\u2019ll be back soon", True),
        ("Service temporarily\n  unavailable", True),
        ("Maintenance window: 2am-4am", True),
        ("Welcome to online banking", False),
        ("Sign in to view your maintenance loan", False),
    ],
)
def test_maintenance_wording(text, expected):
    assert has_maintenance_wording(text) is expected


# --------------------------------------------------------------------------- outbound policy (bot/outbound.py)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost", "[::ffff:127.0.0.1]", "[::1]"]
)
async def test_default_policy_sends_nothing_to_local_addresses(site, make_prober, canary, host):
    before = site.total_hits()
    prober = make_prober(ProbeSettings(canary_urls=canary))  # the production outbound policy
    for url in (f"http://{host}:{site.port}/healthy", f"{host}:{site.port}/healthy", f"http://{host}/"):
        r = await prober.check(f"typed-{url}", url)
        assert (r.status, r.reason, r.http_status, r.final_url) == ("unknown", "not_allowed", None, None)
    assert site.total_hits() == before  # neither the "bank" nor the canary


@pytest.mark.asyncio
async def test_metadata_and_private_addresses_are_not_probed(make_prober):
    prober = make_prober(ProbeSettings(canary_urls=()))
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://user:pw@www.example.com/",
        "https://www.example.com:8443/",
    ):
        t0 = time.perf_counter()
        r = await prober.check(url, url)
        assert (r.status, r.reason) == ("unknown", "not_allowed")
        assert time.perf_counter() - t0 < 0.5  # refused before any connection attempt


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "to",
    [
        "http://127.0.0.1:{other}/healthy",
        "http://[::1]:{port}/healthy",
        "http://127.0.0.2:{port}/healthy",
        "ftp://127.0.0.1:{port}/healthy",
    ],
)
async def test_a_redirect_out_of_the_allowance_is_not_followed(make_prober, to):
    with FakeBankSite() as bank, FakeBankSite() as other:
        settings = make_settings(outbound=OutboundPolicy(allow=(f"127.0.0.1:{bank.port}",)))
        r = await make_prober(settings).check(
            "bank", bank.url("/redirect") + "?to=" + to.format(other=other.port, port=bank.port)
        )
        assert (r.status, r.reason, r.http_status) == ("unknown", "not_allowed", None)
        assert bank.hits("/redirect") == 1 and bank.hits("/healthy") == 0 and other.total_hits() == 0


@pytest.mark.asyncio
async def test_probe_connects_to_the_address_it_checked(site, make_prober):
    calls = []

    async def resolver(host, port):  # "bank.test" exists only here; a second lookup would be private
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]

    path = unique("/healthy")
    prober = make_prober(make_settings(cache_ttl=0), resolver=resolver)
    r = await prober.check("bank", f"http://bank.test:{site.port}{path}")
    assert (r.status, r.http_status) == ("up", 200) and calls == ["bank.test"]
    assert r.final_url == f"http://bank.test:{site.port}{path}"
    r = await prober.check("bank", f"http://bank.test:{site.port}{path}")
    assert (r.status, r.reason) == ("unknown", "not_allowed") and site.hits(path) == 1
