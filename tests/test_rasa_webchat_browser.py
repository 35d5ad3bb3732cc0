"""The community's Rasa widget, rasa-webchat 1.0.1 (npm, Apache-2.0, fetched from the npm registry at
test time with `npm pack` and cached under var/npm/), pointed at our socket.io channel in Debian
Chromium: a customer who migrated to this product with the widget they already embed sees the bot's
text and quick replies, the hand-off banners, the specialist's messages and refusals, because every
message we push is in Rasa's shape (text, quick_replies, our fields under ``metadata``), and is not
offered a paperclip it does not have.

The page that embeds it is served to the browser on the chat server's own origin (Playwright answers
that one URL; nothing is added to the product), as a site embedding it would be allowed by
CHAT_ALLOWED_ORIGINS."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from tests import browser as chromium_browser
from tests import servers

VERSION = "1.0.1"
CACHE = servers.ROOT / "var" / "npm" / f"rasa-webchat-{VERSION}"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop help</title></head>
<body>
<div id="webchat"></div>
<script src="/rasa-webchat-test/index.js"></script>
<script>
  window.WebChat.default(
    {
      selector: "#webchat",
      embedded: true,
      initPayload: null,
      customData: { language: "en" },
      socketUrl: window.location.origin,
      socketPath: "/socket.io/",
      title: "Bank feeds",
      params: { storage: "local" },
    },
    null
  );
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def webchat_bundle() -> Path:
    """rasa-webchat's browser bundle (lib/index.js) from the npm registry, unpacked once."""
    bundle = CACHE / "package" / "lib" / "index.js"
    if not bundle.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"rasa-webchat@{VERSION}", "--silent"], cwd=CACHE, check=True, timeout=300)
        with tarfile.open(CACHE / f"rasa-webchat-{VERSION}.tgz") as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/") and ".." not in m.name and m.isfile()]
            archive.extractall(CACHE, members=members)
    assert bundle.is_file() and (CACHE / "package" / "LICENSE").is_file()
    return bundle


def responses(page) -> list:
    return page.locator(".rw-response").all_inner_texts()


def test_rasa_webchat_shows_bot_hand_off_specialist_and_refusals(rasa_stack, make_agent, webchat_bundle):
    from playwright.sync_api import expect

    page_url = f"{rasa_stack.url}/rasa-webchat-test/"
    with chromium_browser.chromium() as chromium:
        page = chromium.new_page()
        page.route(page_url, lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE))
        page.route(
            f"{rasa_stack.url}/rasa-webchat-test/index.js",
            lambda route: route.fulfill(status=200, content_type="application/javascript", path=str(webchat_bundle)),
        )
        page.goto(page_url)
        box = page.locator(".rw-new-message")
        expect(box).to_be_visible(timeout=30_000)

        def say(text: str) -> None:
            box.fill(text)
            box.press("Enter")

        # the bot: its text and its quick replies
        say("quickbooks says error 102 for my chase account")
        log = page.locator(".rw-messages-container")
        expect(log).to_contain_text("Error 102", timeout=60_000)
        # rasa-webchat's start-up message (its init payload: none set) is not answered with an error
        assert "couldn't read that" not in log.inner_text()
        expect(page.locator(".rw-reply").first).to_be_visible(timeout=30_000)
        # a client that never said it can send files is not told to use a paperclip
        session_id = page.evaluate("() => JSON.parse(window.localStorage.getItem('chat_session')).session_id")
        assert session_id.startswith("web-")

        # a person: the queue, then a specialist's banner and message, then the hand-back with its buttons
        say("i want to talk to a person")
        expect(log).to_contain_text("talk to a person now?", timeout=60_000)
        page.get_by_text("Talk to a specialist").last.click()  # a quick reply, as rasa-webchat shows it
        expect(log).to_contain_text("queue", timeout=60_000)
        dana = make_agent("webchat-agent", "Dana")
        ticket = dana.ticket_for(session_id)
        assert dana.post(f"/tickets/{ticket['id']}/claim").status_code == 200
        expect(log).to_contain_text("Dana from our bank-feed team has joined the chat", timeout=20_000)
        hello = "Hi, I'm Dana. Chase had an outage this morning; it's fixed now."
        assert dana.post(f"/tickets/{ticket['id']}/messages", json={"text": hello}).status_code == 201
        expect(log).to_contain_text(f"Dana: {hello}", timeout=20_000)  # who wrote it is in the text itself
        assert dana.post(f"/tickets/{ticket['id']}/return", json={"note": "outage explained"}).status_code == 200
        expect(log).to_contain_text("Dana has handed you back to the assistant", timeout=20_000)
        expect(page.get_by_text("Yes, it's fixed").last).to_be_visible(timeout=20_000)

        # a refusal (a message over the size limit) is shown too, not dropped
        say("x" * 6000)  # over the 5,000 characters a message may have
        expect(log).to_contain_text("Sorry, I couldn't read that", timeout=20_000)

        shown = responses(page)
        assert not any("paperclip" in text.lower() or "attach the bank file" in text.lower() for text in shown)
        chromium_browser.screenshot(page, "rasa-webchat")
