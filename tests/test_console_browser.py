"""The agent console in a real browser: sign in, claim, reply, and user HTML shown as text."""

from __future__ import annotations

import uuid

from tests.browser import chromium, screenshot

PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def test_agent_signs_in_claims_and_replies_and_html_stays_text(rasa_stack, handoff_db):
    handoff_db.agents.create_agent("browser-agent", "correct horse battery", "Robin")
    sender = f"browser-{uuid.uuid4().hex[:10]}"
    rasa_stack.send(sender, "error 102 with chase")
    rasa_stack.send(sender, "i want to talk to a person")
    rasa_stack.send(sender, "/ask_human")
    rasa_stack.send(sender, PAYLOAD)  # reaches the specialist while waiting

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 860})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{rasa_stack.url}/agent/")
        page.fill("#login-username", "browser-agent")
        page.fill("#login-password", "wrong password")
        page.click("#login-submit")
        page.wait_for_selector("#login-error:not([hidden])")
        page.fill("#login-password", "correct horse battery")
        page.click("#login-submit")
        page.wait_for_selector("#app-view:not([hidden])")
        assert page.text_content("#me-name") == "Robin"

        row = page.locator("#list-waiting li", has_text="Chase").first
        row.wait_for()
        row.click()
        page.wait_for_selector("#ticket-view:not([hidden])")
        page.click("#btn-claim")
        page.wait_for_selector("#reply-text:not([disabled])")

        transcript = page.locator("#transcript")
        transcript.get_by_text(PAYLOAD, exact=False).first.wait_for()  # shown literally
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#transcript img").count() == 0
        assert not dialogs

        page.fill("#reply-text", "Hi, I'm Robin. Chase had an outage this morning; try Update now.")
        page.keyboard.press("Enter")
        transcript.get_by_text("Chase had an outage this morning", exact=False).first.wait_for()

        # live: the user's next message appears without a reload
        rasa_stack.send(sender, "ok trying update now")
        transcript.get_by_text("ok trying update now").first.wait_for(timeout=10_000)
        screenshot(page, "console-ticket")

    delivered = [m["text"] for m in rasa_stack_messages(rasa_stack, sender)]
    assert "Hi, I'm Robin. Chase had an outage this morning; try Update now." in delivered


def rasa_stack_messages(rasa_stack, sender):
    return rasa_stack.messages(sender)["messages"]
