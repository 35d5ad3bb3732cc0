"""Bank files in the chat widget, in a real browser (Debian's Chromium driven by Playwright).

A customer opens the demo page, attaches a broken bank export with the paperclip (keyboard: Enter on
the button opens the file chooser), reads the report (problems with row numbers) and downloads the
clean CSV; then attaches a file whose dates read both ways and answers the date-order question; a
file over the limit gives a clear error. The upload lines survive a reload (they are kept in this
browser only). Screenshot: test-artifacts/upload-widget.png.

Nothing here depends on the wording of the bot's responses (the model may be older than domain.yml).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.browser import ARTIFACTS, chromium

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is needed for the browser test")
expect = sync_api.expect

CORPUS = Path(__file__).parent / "fixtures" / "bank_exports"
BROKEN = CORPUS / "currency_symbols.csv"  # currency symbols and thousands separators, rows 2-5
AMBIGUOUS = CORPUS / "ambiguous_dates.csv"  # 03/04/2024 ... : March 4 or 3 April?
TIMEOUT = 30_000


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)  # let the log settle at its end
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # the viewport: the chat panel is fixed


def test_attach_a_bank_file_get_a_report_and_a_clean_file(rasa_stack, handoff_db):
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US", accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        uploads = []
        page.on("request", lambda r: uploads.append(r) if r.url.endswith("/upload/analyse") else None)

        assert page.goto(f"{rasa_stack.url}/chat/").ok
        page.locator(".bfc-launcher").click()
        log = page.get_by_role("log", name="Conversation")
        expect(page.locator(".bfc-status")).to_be_hidden(timeout=15_000)

        # ------------------------------------------------------------ the paperclip, from the keyboard
        attach = page.get_by_role("button", name="Attach a bank file")
        expect(attach).to_be_visible()
        file_input = page.locator("input.bfc-file-input")
        assert file_input.get_attribute("accept") == ".csv,.qbo,.qfx,.ofx,.txt,.qif"
        with page.expect_file_chooser() as chooser_info:
            # (focus inside the block: Playwright turns file-chooser interception on asynchronously)
            attach.focus()
            expect(attach).to_be_focused()
            page.keyboard.press("Enter")
        chooser_info.value.set_files(str(BROKEN))

        expect(log).to_contain_text("Uploaded currency_symbols.csv")
        user_line = page.locator(".bfc-row--user").filter(has_text="Uploaded currency_symbols.csv")
        expect(user_line).to_have_count(1)
        report = page.locator(".bfc-row--bot .bfc-upload--report").last
        expect(report).to_be_visible(timeout=TIMEOUT)
        problems = report.get_by_role("list", name="Problems found")
        expect(problems).to_contain_text("Row 2:")
        expect(problems).to_contain_text("Row 5:")
        expect(report).to_contain_text("QuickBooks would reject currency_symbols.csv")

        link = report.locator("a.bfc-file-link")
        expect(link).to_have_count(1)
        expect(link).to_contain_text("Download currency_symbols_2024-03-14_to_2024-03-20.csv")
        assert link.get_attribute("download") == "currency_symbols_2024-03-14_to_2024-03-20.csv"
        href = link.evaluate("a => a.href")
        assert re.fullmatch(re.escape(rasa_stack.url) + r"/upload/files/[A-Za-z0-9_-]{32,100}", href), href

        # the upload went with the session id as sender, and the file waits in the product database
        session_id = page.evaluate("localStorage.getItem('bankfeedchat:session')")
        assert len(uploads) == 1 and uploads[0].method == "POST"
        token = href.rsplit("/", 1)[1]
        with handoff_db.database.reading() as s:
            row = s.execute(
                sa.text("SELECT conversation_id, downloaded_at FROM upload_files WHERE token_hash = :h"),
                {"h": hashlib.sha256(token.encode()).hexdigest()},
            ).first()
        assert row is not None and row.conversation_id == session_id and row.downloaded_at is None

        report.evaluate("""n => { const s = n.closest('.bfc-scroller');
            s.scrollTop += n.getBoundingClientRect().top - s.getBoundingClientRect().top - 8; }""")
        shot(page, "upload-widget")  # the report: summary, problems by row, the download link

        got = page.request.get(href)
        assert got.ok and got.headers["content-type"].startswith("text/csv")
        text = got.text()
        assert text.startswith("Date,Description,Amount")
        assert "-1234.56" in text and "$" not in text
        assert page.request.get(href).status == 404  # one download only

        # ------------------------------------------------------------ dates that read two ways
        file_input.set_input_files(str(AMBIGUOUS))
        expect(log).to_contain_text("Uploaded ambiguous_dates.csv")
        question = page.locator(".bfc-upload--question").last
        expect(question).to_contain_text("Is 03/04/2024 March 4, 2024 or 3 April 2024?", timeout=TIMEOUT)
        choices = question.get_by_role("group", name="How are the dates written?")
        expect(choices.get_by_role("button")).to_have_count(2)
        expect(choices.get_by_role("button", name="3 April (DD/MM)")).to_be_enabled()
        choices.get_by_role("button", name="March 4 (MM/DD)").click()

        expect(page.locator(".bfc-row--user").filter(has_text="March 4 (MM/DD)")).to_have_count(1)
        expect(choices.get_by_role("button", name="March 4 (MM/DD)")).to_have_attribute("aria-pressed", "true")
        expect(choices.get_by_role("button", name="3 April (DD/MM)")).to_be_disabled()
        converted = page.locator(".bfc-upload--report").filter(has=page.locator("a.bfc-file-link")).last
        expect(converted).to_contain_text("ambiguous_dates", timeout=TIMEOUT)
        expect(converted.locator("a.bfc-file-link")).to_contain_text("ambiguous_dates_2024-03-04_to_2024-10-04.csv")
        lines = page.request.get(converted.locator("a.bfc-file-link").evaluate("a => a.href")).text().splitlines()
        assert lines[0] == "Date,Description,Amount" and lines[1].startswith("03/04/2024,Coffee shop")
        assert len(uploads) == 3  # the same file again, with date_order (else the question would come back)

        # ------------------------------------------------------------ too big: a clear error
        file_input.set_input_files(files=[{"name": "huge.csv", "mimeType": "text/csv", "buffer": b"a" * (5 * 1024 * 1024 + 100)}])
        error = page.locator(".bfc-upload--error").last
        expect(error).to_contain_text("huge.csv is too big to check", timeout=TIMEOUT)
        expect(error).to_contain_text("350 KB")

        shot(page, "upload-widget-2-dates")  # the date question answered, the converted file, the error

        # ------------------------------------------------------------ a reload keeps the lines (this browser only)
        page.reload()
        expect(log).to_contain_text("Uploaded currency_symbols.csv", timeout=15_000)
        expect(log).to_contain_text("March 4 (MM/DD)")
        expect(page.locator(".bfc-file-link")).to_have_count(2)
        expect(page.locator(".bfc-upload-choice").first).to_be_disabled()  # the file isn't kept across a reload
        assert errors == [], errors
        context.close()
