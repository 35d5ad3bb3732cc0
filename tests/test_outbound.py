"""The outbound-request policy (bot/outbound.py): address checks, and real local servers that must receive
nothing when the policy refuses, redirects checked hop by hop, resolve-once, TLS by name, size and time caps."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

import pytest

from bot.outbound import (
    Allowance,
    OutboundClient,
    OutboundDNSError,
    OutboundPolicy,
    OutboundRedirectLimit,
    OutboundRefused,
    OutboundTooLarge,
    host_matches,
    is_public,
    parse_ipv4_number,
    parse_url,
    resolve_checked,
)
from tests.bank_sites import FakeBankSite

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0x7f.0.0.1",
    "017700000001",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
]
PRIVATE_ADDRESSES = [
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "192.0.0.8",
    "[::]",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[ff02::1]",
    "[2001:db8::1]",
    "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a00:1]",
    "[2002:a9fe:a9fe::]",
    "[fec0::1]",
    "[100::1]",
]


# ---------------------------------------------------------------------------------------------------- units
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + PRIVATE_ADDRESSES)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_non_public_spelling_is_refused_by_default(host, scheme):
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check_url(f"{scheme}://{host}/login")
    assert refused.value.reason == "address"
    with pytest.raises(OutboundRefused):  # on an allowed port too
        OutboundPolicy().check_url(f"{scheme}://{host}:443/")


@pytest.mark.parametrize(
    "spelling",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1", "0x7F.0x0.0x0.0x1", "017700000001", "127.0.0.1."],
)
def test_numeric_ipv4_spellings_mean_loopback(spelling):
    assert parse_ipv4_number(spelling) == ipaddress.IPv4Address("127.0.0.1")
    assert parse_url(f"http://{spelling}/").host == "127.0.0.1"


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:0001]"])
def test_ipv4_mapped_ipv6_is_read_as_its_ipv4_address(host):
    target = parse_url(f"http://{host}:8080/")
    assert (target.host, target.port, target.ip) == ("127.0.0.1", 8080, ipaddress.IPv4Address("127.0.0.1"))


@pytest.mark.parametrize(
    "url,reason",
    [
        ("http://user:pw@example.com/", "userinfo"),
        ("http://user@example.com/", "userinfo"),
        ("https://:@example.com/", "userinfo"),
        ("http://example.com@127.0.0.1/", "userinfo"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com:70/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("dict://127.0.0.1:11211/", "scheme"),
        ("http://example.com:8080/", "port"),
        ("https://example.com:22/", "port"),
        ("http://example.com:6379/", "port"),
        ("http://[fe80::1%25eth0]/", "address"),
        ("http://[fe80::1%eth0]/", "address"),
        ("http://exa mple.com/", "bad_url"),
        ("http://example.com\\@127.0.0.1/", "bad_url"),
        ("http://example.com\t/", "bad_url"),
        ("http://ex%61mple.com/", "bad_url"),
        ("http://1.2.3.4.5/", "bad_url"),
        ("http://256.0.0.1/", "bad_url"),
        ("http://0x100000000/", "bad_url"),
        ("http://example.com:0/", "bad_url"),
        ("http://example.com:99999/", "bad_url"),
        ("http://example.com:8o/", "bad_url"),
        ("http://[::1/", "bad_url"),
        ("//example.com/", "bad_url"),
        ("http:example.com", "bad_url"),
        ("http://", "bad_url"),
        ("", "bad_url"),
        (None, "bad_url"),
    ],
)
def test_malformed_or_forbidden_urls_are_refused(url, reason):
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check_url(url)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "url,host,port",
    [
        ("https://www.chase.com/web/auth?x=1#frag", "www.chase.com", 443),
        ("HTTP://WWW.Example.COM:80/", "www.example.com", 80),
        ("http://8.8.8.8/", "8.8.8.8", 80),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111", 443),
        ("http://[::ffff:8.8.8.8]/", "8.8.8.8", 80),
        ("https://bücher.example/", "xn--bcher-kva.example", 443),
        ("http://example.com:443/", "example.com", 443),
    ],
)
def test_public_urls_pass(url, host, port):
    target = OutboundPolicy().check_url(url)
    assert (target.host, target.port) == (host, port)
    assert "#" not in target.target


def test_is_public():
    assert is_public(ipaddress.ip_address("8.8.8.8")) and is_public(ipaddress.ip_address("2606:4700::1111"))
    assert is_public(ipaddress.ip_address("::ffff:8.8.8.8"))
    for bad in (
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "169.254.169.254",
        "100.64.0.1",
        "fe80::1",
        "ff02::1",
        "0.0.0.0",
    ):
        assert not is_public(ipaddress.ip_address(bad)), bad


def test_allowances_are_explicit_and_exact():
    policy = OutboundPolicy(allow=("127.0.0.1:8080", "10.0.0.0/8", "[::1]:9000"))
    assert policy.allowed(ipaddress.ip_address("127.0.0.1"), 8080)
    assert not policy.allowed(ipaddress.ip_address("127.0.0.1"), 8081)
    assert not policy.allowed(ipaddress.ip_address("127.0.0.2"), 8080)
    assert policy.allowed(ipaddress.ip_address("10.9.8.7"), 6379)  # no port: any port of that network
    assert policy.allowed(ipaddress.ip_address("::1"), 9000) and not policy.allowed(ipaddress.ip_address("::1"), 80)
    assert policy.allowed(ipaddress.ip_address("::ffff:127.0.0.1"), 8080)  # the same address
    assert policy.check_url("http://2130706433:8080/").host == "127.0.0.1"  # a spelling of an allowed one
    with pytest.raises(OutboundRefused):
        policy.check_url("http://127.0.0.1:8081/")
    assert [str(a) for a in policy.allow] == ["127.0.0.1:8080", "10.0.0.0/8", "[::1]:9000"]
    assert OutboundPolicy().allow == ()
    for bad in ("localhost", "localhost:80", "127.0.0.1:http", "[::1", "", 42, "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            Allowance.parse(bad)


def test_policy_from_mapping():
    p = OutboundPolicy.from_mapping({"ports": [443], "allow": ["127.0.0.1"], "max_bytes": 10})
    assert p.ports == (443,) and p.allow == (Allowance.parse("127.0.0.1"),) and p.max_bytes == 10
    assert OutboundPolicy.from_mapping(None) == OutboundPolicy() == OutboundPolicy.from_mapping({"allow": None})
    for bad in (
        {"alow": []},
        {"schemes": ["ftp"]},
        {"ports": "80"},
        {"ports": [0]},
        {"max_redirects": -1},
        {"total_timeout": 0},
        {"allow": "127.0.0.1"},
        {"max_bytes": 1.5},
    ):
        with pytest.raises(ValueError):
            OutboundPolicy.from_mapping(bad)


def test_host_allow_lists():
    patterns = ["smba.trafficmanager.net", "*.smba.trafficmanager.net", "*.botframework.com"]
    assert host_matches("smba.trafficmanager.net", patterns)
    assert host_matches("emea.smba.trafficmanager.net", patterns)
    assert host_matches("europe.webchat.botframework.com", patterns)
    assert host_matches("SMBA.trafficmanager.net.", patterns)
    for bad in (
        "botframework.com.evil.com",
        "evilbotframework.com",
        "smba.trafficmanager.net.evil",
        "trafficmanager.net",
        "127.0.0.1",
        "botframework.com",
    ):
        assert not host_matches(bad, patterns), bad


# ---------------------------------------------------------------------------------------------------- resolving
class Resolver:
    """A resolver tests inject: the answers per name, in turn (the last one repeats); counts lookups."""

    def __init__(self, **answers: List[List[str]]):
        self.answers = {name.replace("_", "."): list(seq) for name, seq in answers.items()}
        self.calls: List[str] = []

    async def __call__(self, host: str, port: int) -> List[str]:
        self.calls.append(host)
        seq = self.answers.get(host)
        if not seq:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return seq.pop(0) if len(seq) > 1 else seq[0]


async def test_names_resolving_to_loopback_or_private_are_refused():
    policy = OutboundPolicy()
    with pytest.raises(OutboundRefused):  # the system resolver: /etc/hosts says 127.0.0.1
        await resolve_checked(parse_url("http://localhost/"), policy)
    with pytest.raises(OutboundRefused):
        await resolve_checked(parse_url("http://LOCALHOST./"), policy)
    resolver = Resolver(
        bank_test=[["8.8.8.8", "10.0.0.1"]],
        mapped_test=[["::ffff:127.0.0.1"]],
        meta_test=[["169.254.169.254"]],
        six_test=[["::1"]],
    )
    for name in ("bank.test", "mapped.test", "meta.test", "six.test"):  # one bad address is enough
        with pytest.raises(OutboundRefused):
            await resolve_checked(parse_url(f"https://{name}/"), policy, resolver)
    ok = Resolver(public_test=[["2606:4700::1111", "8.8.4.4"]])
    assert str(await resolve_checked(parse_url("https://public.test/"), policy, ok)) == "8.8.4.4"


async def test_dns_failure_is_fast_and_not_a_refusal():
    t0 = time.perf_counter()
    with pytest.raises(OutboundDNSError):
        await resolve_checked(parse_url("https://bank.invalid/"), OutboundPolicy())
    assert time.perf_counter() - t0 < 3.5

    async def hanging(host: str, port: int) -> List[str]:
        await asyncio.sleep(30)
        return []

    t0 = time.perf_counter()
    with pytest.raises(OutboundDNSError):
        await resolve_checked(parse_url("https://slow.test/"), OutboundPolicy(resolve_timeout=0.2), hanging)
    assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------------------------------------------- real servers
@pytest.fixture(scope="module")
def site():
    with FakeBankSite() as s:
        yield s


@pytest.fixture(scope="module")
def other_site():
    with FakeBankSite() as s:
        yield s


def allowing(*sites: FakeBankSite, **kw) -> OutboundPolicy:
    return OutboundPolicy(allow=tuple(f"127.0.0.1:{s.port}" for s in sites), **kw)


async def test_local_servers_receive_nothing_under_the_default_policy(site):
    before = site.total_hits()
    spellings = [s for s in LOOPBACK_SPELLINGS if not s.startswith("[")] + ["localhost", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]
    # the site's port is allowed, so it is the address that is refused
    policies = [OutboundPolicy(), OutboundPolicy(ports=(80, 443, site.port))]
    async with OutboundClient(policies[1]) as with_port, OutboundClient(policies[0]) as default:
        for client in (default, with_port):
            for host in spellings:
                for method in ("GET", "HEAD", "POST"):
                    with pytest.raises(OutboundRefused):
                        await client.fetch(method, f"http://{host}:{site.port}/healthy")
    assert site.total_hits() == before


async def test_an_explicit_allowance_reaches_that_port_only(site, other_site):
    async with OutboundClient(allowing(site)) as client:
        fetched = await client.fetch("GET", site.url("/a/healthy"))
        assert fetched.status_code == 200 and b"Example Bank" in fetched.content
        assert fetched.url == site.url("/a/healthy") and fetched.redirects == 0
        assert site.last_headers("/a/healthy")["Host"] == f"127.0.0.1:{site.port}"
        with pytest.raises(OutboundRefused):
            await client.fetch("GET", other_site.url("/a/healthy"))
    assert other_site.hits("/a/healthy") == 0


@pytest.mark.parametrize(
    "to",
    [
        "http://127.0.0.1:{other}/r/healthy",  # another port
        "http://[::1]:{port}/r/healthy",  # another loopback spelling that is not the allowed address
        "http://127.0.0.2:{port}/r/healthy",
        "http://0x7f000002:{port}/r/healthy",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://127.0.0.1:{port}/r/healthy",  # another scheme
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{port}/r/healthy",
        "http://10.0.0.1:{port}/",
    ],
)
async def test_every_redirect_hop_is_checked(site, other_site, to):
    target = to.format(port=site.port, other=other_site.port)
    before = (site.hits("/r/healthy"), other_site.total_hits())
    async with OutboundClient(allowing(site)) as client:
        with pytest.raises(OutboundRefused):
            await client.fetch("GET", site.url("/r/redirect") + "?to=" + target)
    assert (site.hits("/r/healthy"), other_site.total_hits()) == before


async def test_allowed_redirects_are_followed_and_bounded(site, other_site):
    async with OutboundClient(allowing(site, other_site, max_redirects=2)) as client:
        fetched = await client.fetch("GET", site.url("/f/redirect") + "?to=" + other_site.url("/f/healthy"))
        assert (fetched.status_code, fetched.url, fetched.redirects) == (200, other_site.url("/f/healthy"), 1)
        with pytest.raises(OutboundRedirectLimit):
            await client.fetch("GET", site.url("/loop/redirect-loop"))
    assert site.hits("/loop/redirect-loop") == 3  # the first request and two redirects


async def test_credentials_are_not_carried_to_another_origin(site, other_site):
    async with OutboundClient(allowing(site, other_site)) as client:
        await client.fetch(
            "GET",
            site.url("/c/redirect") + "?to=" + other_site.url("/c/healthy"),
            headers={"Authorization": "Bearer SECRET", "X-Other": "kept"},
        )
    assert site.last_headers("/c/redirect")["Authorization"] == "Bearer SECRET"
    assert "Authorization" not in other_site.last_headers("/c/healthy")
    assert other_site.last_headers("/c/healthy")["X-Other"] == "kept"


async def test_the_connection_goes_to_the_checked_address_resolved_once(site):
    # "bank.test" is not in any DNS: only the injected resolver knows it. Its first answer is the allowed
    # address; a second lookup would get a private one (a rebinding attacker's DNS).
    resolver = Resolver(bank_test=[["127.0.0.1"], ["10.0.0.7"]])
    async with OutboundClient(allowing(site), resolver=resolver) as client:
        fetched = await client.fetch("GET", f"http://bank.test:{site.port}/dns/healthy")
        assert fetched.status_code == 200 and fetched.url == f"http://bank.test:{site.port}/dns/healthy"
        assert resolver.calls == ["bank.test"]  # resolved once; httpx did not look the name up again
        assert site.last_headers("/dns/healthy")["Host"] == f"bank.test:{site.port}"
        with pytest.raises(OutboundRefused):  # the next lookup answers a private address: refused, unsent
            await client.fetch("GET", f"http://bank.test:{site.port}/dns2/healthy")
    assert site.hits("/dns2/healthy") == 0


async def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(tmp_path):
    with FakeBankSite(tls=True, cert_names=("bank.test",)) as tls_site:
        trust = ssl.create_default_context(cafile=tls_site.cert_path)
        resolver = Resolver(bank_test=[["127.0.0.1"]], other_test=[["127.0.0.1"]])
        policy = allowing(tls_site)
        async with OutboundClient(policy, resolver=resolver, verify=trust) as client:
            fetched = await client.fetch("GET", f"https://bank.test:{tls_site.port}/tls/healthy")
            assert fetched.status_code == 200
            assert tls_site.last_headers("/tls/healthy")["Host"] == f"bank.test:{tls_site.port}"
            with pytest.raises(Exception) as failed:  # the certificate is not for other.test: SNI/verify use the name
                await client.fetch("GET", f"https://other.test:{tls_site.port}/tls2/healthy")
            assert "certificate" in repr(failed.value).lower() or "ssl" in repr(failed.value).lower()
        assert tls_site.hits("/tls2/healthy") == 0


class _Stream(BaseHTTPRequestHandler):
    """/big: 2 MB without Content-Length; /drip: a byte every 0.1 s, forever."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            if self.path.startswith("/big"):
                for _ in range(32):
                    self.wfile.write(b"x" * 65536)
            else:
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
        except OSError:
            pass


@pytest.fixture(scope="module")
def stream_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_size_cap_declared_and_streamed(site, stream_server):
    port = stream_server.server_address[1]
    policy = OutboundPolicy(allow=(f"127.0.0.1:{port}", f"127.0.0.1:{site.port}"), max_bytes=100_000)
    async with OutboundClient(policy) as client:
        with pytest.raises(OutboundTooLarge):  # no Content-Length: stopped while streaming
            await client.fetch("GET", f"http://127.0.0.1:{port}/big")
        with pytest.raises(OutboundTooLarge) as declared:  # Content-Length over the cap: not read at all
            await client.fetch("GET", site.url("/cap/healthy"), max_bytes=50)
        assert declared.value.declared and declared.value.declared > 50


async def test_time_cap_bounds_the_whole_exchange(site, stream_server):
    port = stream_server.server_address[1]
    policy = OutboundPolicy(allow=(f"127.0.0.1:{port}", f"127.0.0.1:{site.port}"), total_timeout=0.6, read_timeout=5)
    async with OutboundClient(policy) as client:
        for url in (f"http://127.0.0.1:{port}/drip", site.url("/time/hang")):  # bytes keep coming / nothing comes
            t0 = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await client.fetch("GET", url)
            assert 0.5 < time.perf_counter() - t0 < 1.5
