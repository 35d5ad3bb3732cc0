"""Outage radar end to end: a burst of reports, the shortened conversation for the next user, the
public status JSON, and a back-online notice delivered once after a restart of the servers; the
console's outage list and its list of banks the directory lacks."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from tests import servers
from tests.conftest import ActionServer, RasaStack

RADAR = {
    "min_reports": 3,
    "min_probe_failures": 3,
    "window_minutes": 30,
    "quiet_minutes": 10,
    "recheck_minutes": 0.01,
    "notice_expiry_hours": 24,
    "notifier_interval_seconds": 0.5,
}


@pytest.fixture(scope="module")
def radar_stack(fake_banks, tmp_path_factory, trained_model):
    base = tmp_path_factory.mktemp("radar")
    env = servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(servers.write_test_directory(base / "banks.yml", fake_banks.base_url)),
            "BANKFEED_SETTINGS": str(
                servers.write_test_settings(base / "bankfeed.yml", fake_banks.url("/canary/healthy"), radar=RADAR)
            ),
            "HANDOFF_DB_URL": f"sqlite:///{base / 'product.db'}",
        }
    )
    actions = ActionServer(env, base).start()
    stack = RasaStack(env, base, actions.port).start()
    yield stack, actions
    stack.stop()
    actions.stop()


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def notices(stack, sender):
    return stack.messages(sender)["notices"]


def test_burst_short_path_status_and_notice_after_restart(radar_stack, fake_banks):
    stack, actions = radar_stack
    fake_banks.set_mode("/monzo/healthy", "error500")  # Monzo's site is failing
    try:
        for i in range(3):
            stack.send(f"early-{i}-{uuid.uuid4().hex[:6]}", "monzo bank feed error 102")

        status = httpx.get(f"{stack.url}/status/outages", timeout=10).json()
        assert [o["bank"] for o in status["active"]] == ["Monzo"]
        assert status["active"][0]["report_count"] >= 3

        user = f"late-{uuid.uuid4().hex[:8]}"
        replies = stack.send(user, "getting error 102 with monzo")
        assert "having an outage" in texts(replies) and "customers have reported this since" in texts(replies)
        # no time zone from this client: the time says it is UTC, in the widget's 12-hour format
        assert re.search(r"since \d{1,2}:\d\d [AP]M UTC,", texts(replies)), texts(replies)
        # a client that says where it is hears the time in its own zone and hour cycle (issue 17)
        zoned = stack.send(
            f"zoned-{uuid.uuid4().hex[:8]}",
            "error 102 with monzo again",
            metadata={"timezone": "Asia/Kolkata", "hour_cycle": "h23"},
        )
        since = re.search(r"since (\d\d):(\d\d),", texts(zoned))
        assert since, texts(zoned)
        utc = re.search(r"since (\d{1,2}):(\d\d) ([AP]M) UTC", texts(replies))
        utc_minutes = (int(utc[1]) % 12 + (12 if utc[3] == "PM" else 0)) * 60 + int(utc[2])
        assert (int(since[1]) * 60 + int(since[2])) % 1440 == (utc_minutes + 330) % 1440  # Kolkata is UTC+5:30
        assert "Upload from file" in texts(replies)  # manual upload offered now
        assert "/notify_when_back" in [b["payload"] for r in replies for b in r.get("buttons", [])]
        assert sum(1 for r in replies if r.get("buttons")) == 1  # one question, one set of buttons
        slots = stack.tracker(user)["slots"]
        assert slots["current_step"] == "manual_upload"
        assert slots["step_outcomes"]["site_check"] == "skipped_known_outage"

        replies = stack.send(user, "/notify_when_back")
        assert "I'll keep checking Monzo" in texts(replies) and "has the feed itself started working" in texts(replies)
        time.sleep(2)  # the notifier runs every 0.5 s: the bank is still down, nothing is sent
        assert notices(stack, user) == []

        stack.stop()
        actions.restart()
        fake_banks.set_mode("/monzo/healthy", None)  # the bank recovers while we're down
        stack.start()

        deadline = time.monotonic() + 20
        while not notices(stack, user) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # more notifier rounds: still exactly one
        sent = notices(stack, user)
        assert len(sent) == 1 and sent[0]["outcome"] == "bank_back" and "Monzo" in sent[0]["text"]
        bot_lines = [e["text"] for e in stack.tracker(user)["events"] if e["event"] == "bot"]
        assert sum((t or "").startswith("Good news: Monzo") for t in bot_lines) == 1
    finally:
        fake_banks.set_mode("/monzo/healthy", None)


def test_console_shows_outages_to_signed_in_agents_only(radar_stack):
    stack, _ = radar_stack
    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore
    from tests.conftest import ConsoleClient

    assert httpx.get(f"{stack.url}/agent/api/outages", timeout=10).status_code == 401
    db = Database(stack.env["HANDOFF_DB_URL"])
    AgentStore(db).create_agent("radar-agent", "correct horse battery", "Ria")
    agent = ConsoleClient(stack.url, "radar-agent", "correct horse battery")
    data = agent.get("/outages").json()
    assert {"active", "recent", "timeline"} <= set(data)
    assert any(o["bank"] == "Monzo" for o in data["recent"])
    db.dispose()


def test_the_console_lists_outages_with_a_timeline(radar_stack):
    from tests.browser import chromium, screenshot

    stack, _ = radar_stack
    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore
    from bot.handoff.unknown_banks import UnknownBanks

    db = Database(stack.env["HANDOFF_DB_URL"])
    AgentStore(db).create_agent("radar-viewer", "correct horse battery", "Val")
    for name in ("Comerica", "comerica", "Tiny Town Credit Union"):
        UnknownBanks(db).record(name)
    db.dispose()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{stack.url}/agent/")
        page.fill("#login-username", "radar-viewer")
        page.fill("#login-password", "correct horse battery")
        page.click("#login-submit")
        page.locator("#list-outages li", has_text="Monzo").first.wait_for()
        assert page.locator("#outage-chart rect").count() == 24
        # the banks customers named that the directory lacks, most asked first
        comerica = page.locator("#list-unknown-banks li", has_text="Comerica")
        comerica.wait_for()
        assert "2 customers" in comerica.inner_text()
        assert page.locator("#list-unknown-banks li").first.inner_text().startswith("Comerica")
        screenshot(page, "console-outages")
        comerica.get_by_role("button", name="Mark Comerica as added to the directory").click()  # a POST with the CSRF token
        page.locator("#list-unknown-banks li", has_text="Comerica").wait_for(state="detached")
        assert page.locator("#list-unknown-banks li", has_text="Tiny Town Credit Union").count() == 1
