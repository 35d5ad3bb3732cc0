"""Over REST, with the real servers: a customer who gives an address on our own network as their bank's
sign-in page gets a plain "I can't check that address", and the local server there receives nothing.

The shared test stack allows only the fake bank site's own port (tests/servers.py ``write_test_settings``),
so every other local server is what production would see: an address the outbound policy refuses."""

from __future__ import annotations

import uuid

import pytest

from bot.troubleshooting.conversation import CANNOT_CHECK_ADDRESS
from tests.bank_sites import FakeBankSite


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


@pytest.fixture(scope="module")
def internal_service():
    """Something on our own network the bot must never touch (stands in for Redis, an admin page, metadata)."""
    with FakeBankSite() as site:
        yield site


@pytest.mark.parametrize(
    "typed",
    [
        "http://127.0.0.1:{port}/",
        "http://2130706433:{port}/admin",
        "http://0x7f000001:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://localhost:{port}/healthy",
        "http://2130706433/",
    ],
)
def test_an_address_on_our_own_network_is_not_checked(rasa_stack, internal_service, typed):
    address = typed.format(port=internal_service.port)
    before = internal_service.total_hits()
    s = f"user-{uuid.uuid4().hex[:10]}"
    rasa_stack.send(s, "error 102")
    replies = rasa_stack.send(s, "First Farmers Bank of Smalltown")
    assert "isn't in my bank list yet" in texts(replies)  # taken as given; no check without an address
    replies = rasa_stack.send(s, address)
    said = texts(replies)
    assert CANNOT_CHECK_ADDRESS in said
    # nothing about the target's state, and nothing about our servers
    for word in ("answering", "isn't working", "maintenance", "slow", "HTTP", " s)", "refuses", "server"):
        assert word not in said, (word, said)
    assert address not in said
    assert internal_service.total_hits() == before
    assert rasa_stack.tracker(s)["slots"]["check_results"][address]["reason"] == "not_allowed"
