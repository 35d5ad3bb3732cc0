"""The website chat widget in a real browser (Debian's Chromium driven by Playwright).

A customer opens the demo help-centre page, chats with the bot (quick replies included), reloads,
loses the connection for a while, asks for a person; a specialist claims the chat through the agent
console API and answers. Everything the customer should see is checked in the page, and screenshots
go to test-artifacts/widget-*.png (one at a 375 px phone width).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is needed for the browser test")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SESSION_KEY = "bankfeedchat:session"
REPLY_TIMEOUT = 30_000  # ms: the bot probes the (local fake) bank site before answering


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get if it is missing (Playwright's own browsers are not used)."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("Chromium is missing and cannot be installed here (needs apt-get as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True)
    assert CHROMIUM.exists()
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"widget-{name}.png"))


class Widget:
    """The chat widget as a user sees it (Playwright's locators reach into its shadow root)."""

    def __init__(self, page):
        self.page = page
        self.launcher = page.locator(".bfc-launcher")
        self.panel = page.get_by_role("dialog", name="Bank feed help")
        self.log = page.get_by_role("log", name="Conversation")
        self.input = page.get_by_label("Your message", exact=True)
        self.status = page.locator(".bfc-status")

    def say(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")

    def replies(self):
        return self.log.get_by_role("group", name="Suggested replies")

    def reply_button(self, title: str):
        return self.log.get_by_role("button", name=title, exact=True)

    def rows(self) -> list:
        """(kind, text) of every line of the conversation, in order."""
        return self.page.eval_on_selector(
            "#bankfeedchat-root",
            """host => Array.from(host.shadowRoot.querySelectorAll('.bfc-items > .bfc-row')).map(row => {
                 const text = row.querySelector('.bfc-bubble, .bfc-banner-title');
                 const visible = text ? text.cloneNode(true) : null;
                 if (visible) visible.querySelectorAll('.bfc-sr').forEach(n => n.remove());
                 return [row.className.match(/bfc-row--(user|bot|agent|banner)/)[1], visible ? visible.textContent : ''];
               })""",
        )

    def session_id(self) -> str:
        return self.page.evaluate(f"localStorage.getItem({SESSION_KEY!r})")


class FlakyNetwork:
    """Lets the test cut the widget's connection to the socket.io server and bring it back."""

    def __init__(self, page):
        self.down = False
        self.sockets = []
        page.route_web_socket(re.compile(r"/socket\.io/"), self._websocket)
        page.route(re.compile(r"/socket\.io/"), self._polling)

    def _websocket(self, ws) -> None:
        if self.down:
            ws.close(code=1011, reason="network down")
            return
        ws.connect_to_server()  # from now on messages pass through both ways
        self.sockets.append(ws)

    def _polling(self, route) -> None:
        if self.down:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def cut(self) -> None:
        self.down = True
        for ws in self.sockets:
            ws.close(code=1006, reason="network down")
        self.sockets.clear()

    def restore(self) -> None:
        self.down = False


def test_customer_chats_reloads_loses_network_and_gets_a_specialist(rasa_stack, make_agent, fake_banks, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    network = FlakyNetwork(page)
    widget = Widget(page)

    # ------------------------------------------------------------------ the demo page, CSP on
    response = page.goto(f"{rasa_stack.url}/chat/")
    assert response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bank feed")
    expect(widget.launcher).to_be_visible()
    expect(widget.launcher).to_have_attribute("aria-expanded", "false")
    expect(widget.panel).to_be_hidden()

    # ------------------------------------------------------------------ open it: focus goes to the input
    widget.launcher.click()
    expect(widget.panel).to_be_visible()
    expect(widget.launcher).to_have_attribute("aria-expanded", "true")
    expect(widget.input).to_be_focused()
    expect(widget.log).to_have_attribute("aria-live", "polite")
    expect(widget.status).to_be_hidden(timeout=15_000)  # connected: no status line
    header_colour = widget.panel.locator(".bfc-header").evaluate("h => getComputedStyle(h).backgroundColor")
    assert header_colour == "rgb(16, 128, 0)"  # primaryColor #108000 from demo-config.js

    session_id = widget.session_id()
    assert re.fullmatch(r"web-[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}", session_id)  # issued by the server

    # ------------------------------------------------------------------ first message: diagnosis + quick replies
    widget.say("getting error 102 with chase")
    expect(widget.log).to_contain_text("getting error 102 with chase")
    expect(widget.log).to_contain_text("Chase", timeout=REPLY_TIMEOUT)
    expect(widget.log).to_contain_text("answering normally", timeout=REPLY_TIMEOUT)
    works = widget.reply_button("Bank site works, QuickBooks still fails")
    expect(works).to_be_enabled()
    expect(widget.reply_button("The bank site shows a problem")).to_be_enabled()
    expect(page.locator(".bfc-typing")).to_be_hidden()
    # the bank's address in the bot's text is a safe link
    link = widget.log.get_by_role("link", name=re.compile(r"chase.healthy"))
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    assert link.get_attribute("href").startswith(fake_banks.base_url)
    expect(widget.log.locator("time").first).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
    shot(page, "1-diagnosis")

    # ------------------------------------------------------------------ a quick reply: title shown, next step
    works.click()
    expect(widget.log.locator(".bfc-row--user").last).to_have_text(re.compile("Bank site works, QuickBooks still fails"))
    expect(widget.log).to_contain_text("refresh", timeout=REPLY_TIMEOUT)
    expect(works).to_be_disabled()
    expect(works).to_have_attribute("aria-pressed", "true")
    expect(widget.reply_button("The bank site shows a problem")).to_be_disabled()
    expect(widget.reply_button("No, still failing")).to_be_enabled()
    expect(widget.input).to_be_focused()
    before_reload = widget.rows()
    assert [kind for kind, _ in before_reload][:2] == ["user", "bot"]
    shot(page, "2-quick-reply")

    # ------------------------------------------------------------------ reload: same user, whole conversation
    page.reload()
    expect(widget.panel).to_be_visible()  # it stays open within the tab
    expect(widget.log).to_contain_text("refresh", timeout=15_000)
    assert widget.session_id() == session_id
    assert widget.rows() == before_reload
    expect(widget.reply_button("Bank site works, QuickBooks still fails")).to_be_disabled()
    expect(widget.reply_button("No, still failing")).to_be_enabled()
    expect(widget.status).to_be_hidden(timeout=15_000)
    shot(page, "3-after-reload")

    # ------------------------------------------------------------------ message text is never markup
    hostile = '<img src=x onerror="window.__pwned=1"> still failing'
    widget.say(hostile)
    expect(widget.log.locator(".bfc-row--user").last).to_have_text(re.compile(re.escape(hostile)))
    expect(widget.log.locator(".bfc-row").last).not_to_have_class(re.compile("bfc-row--user"), timeout=REPLY_TIMEOUT)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.eval_on_selector("#bankfeedchat-root", "h => h.shadowRoot.querySelectorAll('.bfc-items img').length") == 0

    # ------------------------------------------------------------------ asking for a person
    widget.say("I want to talk to a person")
    specialist = widget.reply_button("Talk to a specialist")
    expect(specialist).to_be_enabled(timeout=REPLY_TIMEOUT)
    specialist.click()
    expect(widget.log).to_contain_text("in the queue", timeout=REPLY_TIMEOUT)
    shot(page, "4-queued")

    # ------------------------------------------------------------------ a specialist claims the chat and answers
    dana = make_agent("widget-agent", "Dana")
    ticket = dana.ticket_for(session_id)
    assert ticket["status"] == "waiting"
    assert dana.post(f"/tickets/{ticket['id']}/claim").status_code == 200
    banner = widget.log.locator(".bfc-banner").last
    expect(banner).to_contain_text("Dana (specialist) joined the chat", timeout=10_000)
    hello = "Hi, I'm Dana. Chase had an outage this morning; see https://status.example.com/chase."
    assert dana.post(f"/tickets/{ticket['id']}/messages", json={"text": hello}).status_code == 201
    agent_row = widget.log.locator(".bfc-row--agent").last
    expect(agent_row).to_contain_text("Dana", timeout=10_000)
    expect(agent_row).to_contain_text("Chase had an outage this morning")
    expect(agent_row.get_by_role("link")).to_have_attribute("href", "https://status.example.com/chase")
    expect(widget.input).to_have_attribute("placeholder", "Message Dana…")
    shot(page, "5-specialist")

    # ------------------------------------------------------------------ network drop: nothing lost, nothing twice
    network.cut()
    expect(widget.status).to_contain_text("Reconnecting", timeout=10_000)
    missed = "Could you try the Update button once more now?"
    assert dana.post(f"/tickets/{ticket['id']}/messages", json={"text": missed}).status_code == 201
    widget.say("ok, trying again now")
    queued = widget.log.locator(".bfc-row--user").last
    expect(queued).to_contain_text("Not sent yet")
    shot(page, "6-reconnecting")
    network.restore()
    expect(widget.status).to_be_hidden(timeout=30_000)
    expect(widget.log).to_contain_text(missed, timeout=10_000)
    expect(queued).not_to_contain_text("Not sent yet")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [m["text"] for m in dana.get(f"/tickets/{ticket['id']}").json()["messages"] if m["sender"] == "user"]
        if "ok, trying again now" in lines:
            break
        time.sleep(0.3)
    assert "ok, trying again now" in lines, "the message written offline reached the specialist"
    texts = [text for _, text in widget.rows()]
    assert texts.count(missed) == 1 and texts.count(hello) == 1 and texts.count("ok, trying again now") == 1

    # ------------------------------------------------------------------ keyboard: Escape closes, focus back on the launcher
    widget.input.focus()
    page.keyboard.press("Escape")
    expect(widget.panel).to_be_hidden()
    expect(widget.launcher).to_be_focused()
    # a message while the panel is closed shows on the launcher
    nudge = "Are you still there?"
    assert dana.post(f"/tickets/{ticket['id']}/messages", json={"text": nudge}).status_code == 201
    expect(widget.launcher).to_have_attribute("aria-label", re.compile(r"1 new message"), timeout=10_000)
    expect(page.locator(".bfc-badge")).to_have_text("1")
    page.keyboard.press("Enter")
    expect(widget.panel).to_be_visible()
    expect(widget.input).to_be_focused()
    expect(page.locator(".bfc-badge")).to_be_hidden()
    expect(widget.log.locator(".bfc-row--agent").last).to_contain_text(nudge)

    # ------------------------------------------------------------------ the specialist hands back to the bot
    assert dana.post(f"/tickets/{ticket['id']}/return", json={"note": "outage explained"}).status_code == 200
    expect(widget.log.locator(".bfc-banner").last).to_contain_text("You're back with the assistant", timeout=10_000)
    expect(widget.reply_button("Yes, it's fixed").last).to_be_enabled()

    # ------------------------------------------------------------------ a 375 px phone: the panel fills the screen
    conversation = widget.rows()
    page.set_viewport_size({"width": 375, "height": 740})
    page.reload()
    expect(widget.panel).to_be_visible()
    expect(widget.log).to_contain_text(missed, timeout=15_000)
    assert widget.rows() == conversation, "a reload shows the same conversation, in the same order"
    box = widget.panel.bounding_box()
    assert box["x"] == 0 and box["y"] == 0 and box["width"] == 375 and box["height"] == 740
    expect(widget.launcher).to_be_hidden()
    scroll_width = page.eval_on_selector("#bankfeedchat-root", "h => h.shadowRoot.querySelector('.bfc-scroller').scrollWidth")
    assert scroll_width <= 375, "nothing in the conversation is wider than the phone"
    shot(page, "7-phone-375")

    # history endpoint: the same conversation the widget showed, for this session only
    history = httpx.get(f"{rasa_stack.url}/chat/history", params={"session_id": session_id}, timeout=10).json()["messages"]
    assert any(m["text"] == f"Dana: {hello}" for m in history)  # named in the text for other clients

    assert page_errors == []
    context.close()


def test_a_long_paste_is_never_cut_without_a_word(rasa_stack, browser):
    """A paste over one message's 2,000 characters: the first part is sent, the rest stays in the box,
    and the customer is told so (the widget used to cut it silently)."""
    context = browser.new_context(viewport={"width": 375, "height": 667}, locale="en-US")
    page = context.new_page()
    widget = Widget(page)
    page.goto(f"{rasa_stack.url}/chat/")
    widget.launcher.click()
    expect(widget.status).to_be_hidden(timeout=15_000)
    paste = ("Error 102 on our chase account. " + "Update failed again, no new transactions since Monday. " * 60)[:2500]
    widget.input.fill(paste)
    widget.input.press("Enter")
    note = page.locator(".bfc-limit")
    expect(note).to_be_visible()
    expect(note).to_contain_text("One message holds at most 2,000 characters")
    rest = widget.input.input_value()
    sent = next(text for kind, text in widget.rows() if kind == "user")
    assert len(sent) <= 2000 and 0 < len(rest) and (sent + " " + rest).split() == paste.split()  # nothing lost
    expect(widget.log).to_contain_text("Chase", timeout=REPLY_TIMEOUT)
    widget.input.press("Enter")  # the rest, as the next message
    expect(note).to_be_hidden()
    shot(page, "long-paste-phone")
    context.close()
