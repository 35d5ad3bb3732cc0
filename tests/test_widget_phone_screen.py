"""Every message the bot can send fits one phone screen, measured in a real phone-sized browser.

Issue 13 asks that long instructions be short numbered steps, "at most one screen on a phone". The
character and line limits in ``test_dialogue`` are a proxy; this test measures the thing itself:
Debian's Chromium (Playwright) at 375 x 667 CSS px (an iPhone SE / 8, the smallest phone screen the
widget supports), the real widget, and every response of ``domain.yml`` (its longest variant, with its
placeholders filled by the longest values the bot really puts there, the closing summary included)
written into a real conversation through Rasa's HTTP API and shown by the widget's own history.
Each bot message, buttons included, must be no taller than the conversation's visible area.

The tallest message and its height go to ``test-artifacts/phone-screen.txt``, a screenshot of it to
``test-artifacts/phone-screen-tallest.png``.
"""

from __future__ import annotations

import re
import string

import httpx
import pytest
import yaml

from bot.paths import REPO_ROOT
from bot.troubleshooting import steps as ts
from tests.browser import ARTIFACTS, chromium

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is needed for the browser test")
expect = sync_api.expect

PHONE = {"width": 375, "height": 667}

# The longest value each placeholder takes in a real conversation.
LONG_BANK = "First Community Federal Credit Union of Northern Pennsylvania"
LONG_HOST = "secure.onlinebanking.firstcommunityfcu-northernpa.org"
ALL_STEPS = list(ts.STEP_TITLES)
LONGEST_RECORD = ts.Record(ALL_STEPS[:3], ALL_STEPS[3:5], {s: "your bank's site was down" for s in ALL_STEPS[5:]})
VALUES = {
    "bank_name": LONG_BANK,
    "bank_name_or_your_bank": LONG_BANK,
    "bank_host": LONG_HOST,
    "bank_login": f"https://{LONG_HOST}/auth/login?returnTo=%2Fdashboard",
    "browser": "Microsoft Edge",
    "elapsed": "23 hours and 59 minutes",
    "error_code": "102",
    "error_code_or_102": "102",
    "error_code_or_185": "185",
    "expected_wait": "about 15 minutes",
    "last_step": max(ts.STEP_TITLES.values(), key=len),
    "observed": "the sign-in page shows a maintenance notice",
    "previous_topic": f"Error 102 with {LONG_BANK}",
    "topic": f"Error 102 with {LONG_BANK}",
    "queue_position": "12",
    "remaining_steps": ts.describe_steps(ALL_STEPS),
    "steps_done": LONGEST_RECORD.sentence(),
    "summary": f"Error 102 with {LONG_BANK} was fixed by {ts.STEP_TITLES[ALL_STEPS[-1]]}. "
    f"Before that, {LONGEST_RECORD.sentence()}.",
    "removed": "a password, a card number, an account number and a one-time security code",
    "reports": "14",
    "retry_after": "60",
    "seconds": "60",
    "since": "Tuesday 9:41 AM",
    "step_title": max(ts.STEP_TITLES.values(), key=len),
    "with_code": " with error 102",
}


def fill(text: str) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    missing = names - VALUES.keys()
    assert not missing, f"no realistic value for {missing}: add one to VALUES"
    return text.format(**VALUES)


def bot_events():
    """One ``bot`` event per response: its longest variant (text and buttons)."""
    domain = yaml.safe_load(open(REPO_ROOT / "domain.yml"))
    events = []
    for name, variants in domain["responses"].items():
        with_text = [v for v in variants if v.get("text")]
        if not with_text:
            continue
        variant = max(with_text, key=lambda v: len(v["text"]) + 40 * len(v.get("buttons") or []))
        buttons = [{"title": b["title"], "payload": b["payload"]} for b in variant.get("buttons") or []]
        events.append(
            {"event": "bot", "text": fill(variant["text"]), "data": {"buttons": buttons}, "metadata": {"utter_action": name}}
        )
    return events


def test_every_bot_message_fits_one_phone_screen(rasa_stack):
    events = bot_events()
    assert len(events) > 50  # the whole domain, not a sample
    with chromium() as browser:
        context = browser.new_context(viewport=PHONE, locale="en-US", is_mobile=True, has_touch=True, device_scale_factor=2)
        page = context.new_page()
        page.goto(f"{rasa_stack.url}/chat/")
        page.locator(".bfc-launcher").click()
        expect(page.locator(".bfc-status")).to_be_hidden(timeout=15_000)  # connected, session issued
        session_id = page.evaluate("localStorage.getItem('bankfeedchat:session')")
        assert re.fullmatch(r"web-[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}", session_id)

        r = httpx.post(
            f"{rasa_stack.url}/conversations/{session_id}/tracker/events",
            json=events,
            headers={"Authorization": f"Bearer {rasa_stack.token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        page.reload()
        log = page.get_by_role("log", name="Conversation")
        expect(log).to_contain_text(VALUES["summary"][:60], timeout=15_000)

        measured = page.eval_on_selector(
            "#bankfeedchat-root",
            """host => {
                 const root = host.shadowRoot;
                 const scroller = root.querySelector('.bfc-scroller');
                 const rows = Array.from(root.querySelectorAll('.bfc-items > .bfc-row--bot'));
                 return {
                   visible: scroller.clientHeight,
                   width: scroller.clientWidth,
                   rows: rows.map((row, i) => ({
                     i, height: Math.ceil(row.getBoundingClientRect().height),
                     text: (row.querySelector('.bfc-bubble') || {}).textContent || '',
                   })),
                 };
               }""",
        )
        rows = measured["rows"]
        assert len(rows) >= len(events), "every response is on the page (socketio may split long texts further)"
        tallest = max(rows, key=lambda r: r["height"])
        row = page.locator("#bankfeedchat-root .bfc-items > .bfc-row--bot").nth(tallest["i"])
        row.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-screen-tallest.png"))
        (ARTIFACTS / "phone-screen.txt").write_text(
            f"viewport {PHONE['width']}x{PHONE['height']}, conversation area {measured['width']}x{measured['visible']} px\n"
            f"{len(rows)} bot messages; tallest {tallest['height']} px:\n{tallest['text']}\n"
        )
        too_tall = [(r["height"], r["text"][:80]) for r in rows if r["height"] > measured["visible"]]
        assert not too_tall, f"taller than the {measured['visible']} px conversation area of a phone: {too_tall}"
        context.close()
