"""The troubleshooting conversation (bot/troubleshooting/conversation.py) turn by turn, against a real local bank site."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List
from urllib.parse import urlsplit

import pytest
import yaml

from bot.banks.directory import Bank, BankDirectory
from bot.banks.site_prober import ProbeSettings, SiteProber
from bot.handoff.escalation import build_summary, handoff_slots, summary_text
from bot.outbound import OutboundPolicy
from bot.troubleshooting import diagnosis as dx
from bot.troubleshooting import steps as ts
from bot.troubleshooting.conversation import CANNOT_CHECK_ADDRESS, State, Troubleshooter, Turn
from tests.bank_sites import FakeBankSite


@pytest.fixture
def bank_site():
    with FakeBankSite() as site:
        yield site


@pytest.fixture
def directory(bank_site) -> BankDirectory:
    return BankDirectory(
        [
            Bank("Chase", "US", "bank", bank_site.url("/chase/healthy"), ("JPMorgan Chase",)),
            Bank("Barclays", "UK", "bank", bank_site.url("/barclays/maintenance"), ()),
            Bank("American Express", "US", "card_issuer", bank_site.url("/amex/error500"), ("Amex",)),
        ]
    )


class Conversation:
    """Plays a conversation the way the Rasa action would: slots in, replies and slot changes out."""

    def __init__(self, directory: BankDirectory, canary: str, also_allow: tuple = ()):
        # the local bank site is an explicit exception to the outbound policy (loopback is refused by default)
        allow = (f"{urlsplit(canary).hostname}:{urlsplit(canary).port}", *also_allow)
        settings = ProbeSettings(budget=2.0, slow_threshold=1.0, canary_urls=(canary,), outbound=OutboundPolicy(allow=allow))
        self.prober = SiteProber(settings)
        self.now = 1_800_000_000.0  # a clock the test moves (``later``)
        self.bot = Troubleshooter(directory, self.prober.check, clock=lambda: self.now)
        self.slots: Dict[str, object] = {}
        self.responses: List[str] = []
        self.messages: List[dict] = []
        self.takes_files = False  # the client can send a file (the widget, Slack, Teams)

    async def say(self, intent: str, text: str = None, **entities: str) -> List[str]:
        for name, value in entities.items():  # what Rasa's from_entity slot mappings do before the action runs
            if name in ("bank", "error_code", "browser", "bank_url"):
                self.slots[name] = value
        turn = Turn(intent=intent, entities={k: [v] for k, v in entities.items()}, text=text, takes_files=self.takes_files)
        reply = await self.bot.handle(State.from_slots(self.slots), turn)
        self.slots.update(reply.slots)
        self.messages = reply.messages
        self.responses = [m.get("response") or m["text"] for m in reply.messages]
        return self.responses

    def later(self, hours: float) -> None:
        self.now += hours * 3600

    def variables(self, response: str) -> dict:
        return next(m for m in self.messages if m.get("response") == response)

    @property
    def steps_tried(self) -> List[str]:
        return list(self.slots.get("steps_tried") or [])


@pytest.fixture
async def convo(directory, bank_site):
    c = Conversation(directory, bank_site.url("/canary/healthy"))
    yield c
    await c.prober.aclose()


async def test_error_102_with_a_known_bank_checks_the_site_first(convo, bank_site):
    replies = await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert replies == ["utter_diagnosis_bank_unavailable", "utter_site_up", "utter_ask_bank_login"]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE
    assert convo.slots["current_step"] == ts.SITE_CHECK
    assert convo.slots["check_results"]["Chase"]["status"] == "up"
    assert bank_site.hits("/chase/healthy") == 1
    assert convo.variables("utter_ask_bank_login")["bank_login"] == bank_site.url("/chase/healthy")


async def test_the_full_102_path_runs_every_fix_in_order_then_escalates(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("deny") == ["utter_step_refresh"]
    assert await convo.say("deny") == ["utter_cred_login_works"]
    # the credential check: yes/no questions, never a password
    assert await convo.say("affirm") == ["utter_cred_same_user_id"]
    assert await convo.say("affirm") == ["utter_cred_password_changed"]
    assert await convo.say("affirm") == ["utter_cred_third_party_access"]
    assert await convo.say("affirm") == ["utter_cred_new_account"]
    assert await convo.say("deny") == ["utter_cred_note_password_changed", "utter_cred_edit_sign_in"]
    assert await convo.say("deny") == ["utter_ask_browser"]
    assert await convo.say("inform", browser="firefox") == ["utter_clear_cache_firefox"]
    assert await convo.say("deny") == ["utter_step_private_window"]
    assert await convo.say("deny") == ["utter_step_manual_upload", "utter_ask_manual_upload_result"]
    assert await convo.say("deny") == ["utter_step_wait_a_day"]
    assert convo.slots.get("escalation_due") is not True
    assert await convo.say("deny") == ["utter_wait_too_soon"]  # "still failing" a second after "wait a day"
    convo.later(hours=25)
    assert await convo.say("deny") == ["utter_escalating"]
    assert convo.slots["escalation_due"] is True
    assert convo.steps_tried == list(ts.COMMON_STEPS)
    assert convo.slots["current_step"] is None


async def test_it_worked_ends_with_a_summary_and_tips(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("fixed_it") == ["utter_resolved", "utter_prevention_tips"]
    summary = convo.variables("utter_resolved")["summary"]
    assert "refreshing the connection" in summary and "checking the bank's website" in summary
    assert convo.slots["resolved"] is True
    assert convo.steps_tried == [ts.SITE_CHECK, ts.REFRESH]
    assert convo.slots["step_outcomes"][ts.REFRESH] == ts.OUTCOME_FIXED


async def test_yes_to_did_it_work_means_fixed(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("affirm") == ["utter_resolved", "utter_prevention_tips"]


async def test_already_did_that_skips_and_records_the_step(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("already_tried") == ["utter_step_skipped", "utter_cred_login_works"]
    assert convo.steps_tried == [ts.SITE_CHECK, ts.REFRESH]
    assert convo.slots["step_outcomes"][ts.REFRESH] == ts.OUTCOME_ALREADY_TRIED


async def test_unknown_bank_raises_the_bank_form_then_checks_the_site(convo, bank_site):
    assert await convo.say("report_bank_unavailable", error_code="102") == ["utter_diagnosis_bank_unavailable"]
    assert convo.slots["needs_bank"] is True
    # the bank form fills the bank; the troubleshooter then runs the check
    convo.slots["bank"] = "Barclays"
    convo.slots["bank_site"] = "Barclays"
    replies = await convo.say("inform", bank="Barclays")
    assert replies == ["utter_site_maintenance", "utter_ask_bank_login"]
    assert convo.slots["needs_bank"] is False
    assert "try again after 3600" in convo.variables("utter_site_maintenance")["retry_after"]


async def test_a_skipped_bank_still_asks_the_user_to_look_themselves(convo):
    await convo.say("report_connection_failure")
    convo.slots["bank_site"] = "skip"
    assert await convo.say("deny") == ["utter_site_skipped", "utter_ask_bank_login"]


async def test_a_url_given_for_an_unlisted_bank_is_probed(convo, bank_site):
    await convo.say("report_bank_unavailable", error_code="102")
    url = bank_site.url("/farmers/error500")
    convo.slots["bank_site"] = url
    replies = await convo.say("inform", bank_url=url)
    assert replies == ["utter_site_down", "utter_ask_bank_login"]
    assert convo.variables("utter_site_down")["observed"] == "it answers with an error (HTTP 500)"


@pytest.mark.parametrize(
    "typed",
    [
        "http://127.0.0.1:{other}/",
        "http://2130706433:{port}/",
        "http://[::1]:{port}/",
        "http://localhost:{port}/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_an_address_the_bot_may_not_contact_gets_a_plain_answer(convo, bank_site, typed):
    # only the local bank site's own port is allowed here; any other local address is refused unsent
    with FakeBankSite() as other:
        url = typed.format(other=other.port, port=other.port)
        await convo.say("report_bank_unavailable", error_code="102")
        convo.slots["bank_site"] = url
        replies = await convo.say("inform", bank_url=url)
        assert replies == [CANNOT_CHECK_ADDRESS, "utter_ask_bank_login"]
        assert other.total_hits() == 0
    assert convo.variables("utter_ask_bank_login")["bank_login"] == "your bank's own website"
    assert convo.slots["check_results"][url]["reason"] == "not_allowed"
    for message in convo.messages:  # no state, status or timing of the target
        assert not {"observed", "seconds", "elapsed", "bank_host"} & set(message)


async def test_bank_site_showing_a_problem_then_moving_on(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("bank_site_problem") == ["utter_bank_site_problem"]
    assert await convo.say("deny") == ["utter_step_refresh"]
    assert convo.slots["step_outcomes"][ts.SITE_CHECK] == ts.OUTCOME_BANK_PROBLEM


async def test_changing_topic_and_coming_back(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")  # site check done, refresh pending
    replies = await convo.say("report_credentials", error_code="103", bank="American Express")
    assert replies[:2] == ["utter_topic_switched", "utter_diagnosis_credentials"]
    assert convo.slots["diagnosis"] == dx.CREDENTIALS
    assert convo.slots["current_step"] == ts.CREDENTIAL_CHECK
    assert convo.steps_tried == []
    # back to the first problem: progress is restored
    replies = await convo.say("report_bank_unavailable", error_code="102")
    assert replies == ["utter_topic_resumed", "utter_step_refresh"]
    assert convo.slots["bank"] == "Chase"
    assert convo.steps_tried == [ts.SITE_CHECK]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE


async def test_naming_the_bank_after_the_code_is_not_a_topic_change(convo):
    await convo.say("report_bank_unavailable", error_code="102")
    convo.slots["bank_site"] = "Chase"
    replies = await convo.say("inform", bank="Chase")
    assert replies == ["utter_site_up", "utter_ask_bank_login"]
    assert "utter_topic_switched" not in replies


async def test_each_neighbouring_code_gets_its_own_first_step(convo):
    expected = {
        "103": ("report_credentials", "utter_cred_login_works"),
        "185": ("report_verification", "utter_step_answer_security_check"),
        "324": ("report_account_not_found", "utter_step_fix_account_mapping"),
        None: ("report_consent_expired", "utter_step_renew_consent"),
    }
    for code, (intent, first_step) in expected.items():
        c = Conversation(convo.bot.directory, "http://127.0.0.1:9/")
        entities = {"bank": "Chase", **({"error_code": code} if code else {})}
        replies = await c.say(intent, **entities)
        assert replies[-1] == first_step, (code, replies)
        await c.prober.aclose()


async def test_the_credential_path_joins_the_common_steps_when_it_fails(convo):
    await convo.say("report_credentials", error_code="103", bank="Chase")
    assert await convo.say("deny") == ["utter_cred_fix_bank_login_first", "utter_cred_edit_sign_in"]
    assert await convo.say("deny") == ["utter_site_up", "utter_ask_bank_login"]
    assert convo.steps_tried == [ts.CREDENTIAL_CHECK]


async def test_asking_for_a_person_first_offers_the_remaining_steps_then_escalates(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("ask_human") == ["utter_offer_human"]
    remaining = convo.variables("utter_offer_human")["remaining_steps"]
    assert remaining.startswith("checking the bank's website") and "waiting a day" in remaining
    assert convo.slots.get("escalation_due") is not True
    assert await convo.say("ask_human") == ["utter_escalated_on_request"]
    assert convo.slots["escalation_due"] is True


async def test_keep_going_after_the_offer_re_presents_the_pending_step(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    await convo.say("ask_human")
    assert await convo.say("continue_troubleshooting") == ["utter_step_refresh"]


async def test_out_of_scope_gets_a_polite_answer_and_keeps_a_real_diagnosis(convo):
    assert await convo.say("out_of_scope") == ["utter_out_of_scope"]
    assert convo.slots["diagnosis"] == dx.OUT_OF_SCOPE
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("out_of_scope") == ["utter_out_of_scope"]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE


async def test_desktop_codes_are_named_as_desktop(convo):
    assert await convo.say("out_of_scope", error_code="OL-301") == ["utter_desktop_code"]


async def test_low_confidence_asks_instead_of_guessing(convo):
    assert await convo.say("nlu_fallback") == ["utter_clarify"]
    assert convo.slots.get("current_step") is None
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("nlu_fallback") == ["utter_reask_site_check"]  # the question again, in other words
    assert convo.slots["current_step"] == ts.SITE_CHECK  # nothing was skipped


async def test_a_code_with_a_bank_read_as_a_mere_detail_is_still_a_report(convo):
    replies = await convo.say("inform", error_code="105", bank="Chase")
    assert replies == ["utter_diagnosis_bank_unavailable", "utter_site_up", "utter_ask_bank_login"]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE


async def test_low_confidence_with_a_known_code_still_diagnoses(convo):
    replies = await convo.say("nlu_fallback", error_code="185")
    assert replies == ["utter_diagnosis_verification", "utter_step_answer_security_check"]


async def test_a_pasted_secret_is_warned_about_and_the_turn_continues(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    c = convo
    turn = Turn(intent="deny", entities={"sensitive_data": ["password"]}, sensitive=True)
    reply = await c.bot.handle(State.from_slots(c.slots), turn)
    assert [m["response"] for m in reply.messages] == ["utter_sensitive_warning", "utter_step_refresh"]


async def test_browser_is_read_from_the_widget_user_agent(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0"
    reply = await convo.bot.handle(State.from_slots(convo.slots), Turn(intent="deny", user_agent=ua))
    assert reply.slots["browser"] == "edge"


async def test_greeting_mid_conversation_welcomes_back(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("greet") == ["utter_welcome_back"]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE


async def test_once_handed_off_the_bot_does_not_troubleshoot(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    convo.slots["handoff_status"] = "requested"
    assert await convo.say("deny") == ["utter_already_escalated"]
    assert await convo.say("fixed_it") == ["utter_resolved", "utter_prevention_tips"]
    assert convo.slots["handoff_status"] == "closed"


def test_escalation_summary_has_what_a_specialist_needs():
    slots = {
        "diagnosis": dx.BANK_UNAVAILABLE,
        "bank": "Chase",
        "error_code": "102",
        "steps_tried": list(ts.COMMON_STEPS),
        "step_outcomes": {s: ts.OUTCOME_FAILED for s in ts.COMMON_STEPS},
        "check_results": {"Chase": {"status": "down", "reason": "http_500"}},
    }
    out = handoff_slots(slots, now=0)
    assert out["handoff_status"] == "requested"
    assert out["escalation_due"] is False
    summary = out["escalation_summary"]
    assert summary["reason"] == "all_steps_tried"
    assert summary["steps_remaining"] == []
    assert summary["requested_at"] == "1970-01-01T00:00:00+00:00"
    text = summary_text(summary)
    assert "bank Chase" in text and "site check Chase: down" in text and "error code 102" in text
    assert build_summary({"diagnosis": dx.CREDENTIALS}, "user_request")["steps_remaining"][0] == ts.CREDENTIAL_CHECK


@pytest.mark.parametrize(
    "diagnosis, first",
    [
        (dx.BANK_UNAVAILABLE, ts.SITE_CHECK),
        (dx.CONNECTION_FAILURE, ts.SITE_CHECK),
        (dx.CREDENTIALS, ts.CREDENTIAL_CHECK),
        (dx.VERIFICATION, ts.ANSWER_SECURITY_CHECK),
        (dx.ACCOUNT_NOT_FOUND, ts.FIX_ACCOUNT_MAPPING),
        (dx.CONSENT_EXPIRED, ts.RENEW_CONSENT),
    ],
)
def test_every_plan_starts_with_its_own_step_and_covers_the_common_ones(diagnosis, first):
    steps = ts.plan(diagnosis)
    assert steps[0] == first
    assert set(ts.COMMON_STEPS) <= set(steps)
    assert len(steps) == len(set(steps))
    assert ts.plan(dx.OUT_OF_SCOPE) == ()


# --------------------------------------------------------------------------- known outages
class RadarDesk:
    """The conversation's view of a real outage radar on a temporary database."""

    def __init__(self, store, conversation_id="c1"):
        from bot.outages.notices import NoticeBook
        from bot.outages.radar import OutageRadar, RadarSettings

        settings = RadarSettings(min_reports=3)
        self.radar, self.book, self.cid = OutageRadar(store, settings), NoticeBook(store, settings), conversation_id

    async def current(self, bank):
        outage = self.radar.current(bank)
        return {"since": outage.started_at.strftime("%H:%M UTC"), "report_count": outage.report_count} if outage else None

    async def record_report(self, bank, diagnosis):
        self.radar.record_report(bank, diagnosis, self.cid)

    async def subscribe(self, bank, url):
        self.book.subscribe(self.cid, "rest", bank, url)
        return True


@pytest.fixture
def product_db(tmp_path):
    from bot.db.engine import Database

    db = Database(f"sqlite:///{tmp_path / 'product.db'}")
    db.migrate()
    yield db
    db.dispose()


async def test_a_known_outage_shortens_the_conversation(convo, product_db, bank_site):
    desk = RadarDesk(product_db)
    for i in range(3):  # three Slack customers: verified reports confirm an outage on their own
        desk.radar.record_report("Chase", "bank_unavailable", f"slack-other-user-{i}", verified=True)
    convo.bot.outages = desk
    replies = await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert replies == ["utter_known_outage", "utter_step_manual_upload", "utter_offer_outage_notice"]
    assert convo.variables("utter_known_outage")["reports"] == "4"  # the three others and this user
    assert bank_site.hits("/chase/healthy") == 0  # no point probing: we already know
    assert convo.steps_tried == [ts.SITE_CHECK, ts.REFRESH, ts.CREDENTIAL_CHECK, ts.CLEAR_CACHE, ts.PRIVATE_WINDOW]
    assert convo.slots["step_outcomes"][ts.REFRESH] == ts.OUTCOME_SKIPPED_OUTAGE
    assert convo.slots["current_step"] == ts.MANUAL_UPLOAD
    assert await convo.say("notify_when_back") == ["utter_outage_notice_confirmed", "utter_ask_manual_upload_result"]
    assert desk.book.pending("c1", "Chase") is not None
    assert await convo.say("deny") == ["utter_step_wait_a_day"]


async def test_without_an_outage_reports_are_recorded_and_the_site_is_checked(convo, product_db, bank_site):
    desk = RadarDesk(product_db, "solo")
    convo.bot.outages = desk
    replies = await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert replies == ["utter_diagnosis_bank_unavailable", "utter_site_up", "utter_ask_bank_login"]
    assert desk.radar.timeline()["banks"]["Chase"]["reports"][-1] == 1


async def test_nothing_but_a_secret_at_a_step_asks_the_step_again(convo):
    """A secret pasted at "Did the feed update?" (ranked as deny by the classifier) answers nothing:
    the warning, then the question again; the step stays where it was."""
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")  # the bank's site works -> the refresh step
    assert convo.slots["current_step"] == ts.REFRESH
    text = "my password is Hunter2!x and card 4111 1111 1111 1111"
    turn = Turn(intent="deny", entities={"sensitive_data": ["password", "card_number"]}, sensitive=True, text=text)
    reply = await convo.bot.handle(State.from_slots(convo.slots), turn)
    assert [m["response"] for m in reply.messages] == ["utter_sensitive_warning", "utter_reask_refresh"]
    assert reply.slots.get("current_step", ts.REFRESH) == ts.REFRESH
    assert not reply.slots.get("steps_tried")


async def test_when_nothing_outside_answers_the_customer_hears_only_that_the_site_was_not_checked():
    """Our own network being down is not the customer's business (issue 17): no "I can't reach other
    websites", just that the bank's site could not be checked and their own look is the better test."""
    import socket

    def closed_port_url(path: str = "/") -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    bank_url, canary = closed_port_url("/chase"), closed_port_url("/canary")
    directory = BankDirectory([Bank("Chase", "US", "bank", bank_url, ())])
    convo = Conversation(directory, canary, also_allow=(urlsplit(bank_url).netloc,))
    try:
        replies = await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    finally:
        await convo.prober.aclose()
    assert replies == ["utter_diagnosis_bank_unavailable", "utter_site_unchecked", "utter_ask_bank_login"]
    assert convo.variables("utter_site_unchecked")["bank_name"] == "Chase"
    text = yaml.safe_load((Path(__file__).parent.parent / "domain.yml").read_text())["responses"]["utter_site_unchecked"][0][
        "text"
    ]
    assert "I couldn't check {bank_name}'s site" in text
    for internal in ("other websites", "internet", "server", "network"):
        assert internal not in text.lower()


async def test_the_file_check_is_offered_only_to_clients_that_can_send_a_file(convo):
    """REST and third-party widgets have no paperclip: they get QuickBooks' Upload from file alone."""

    async def up_to_the_private_window():
        await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
        for intent in ["deny", "deny", "affirm", "affirm", "affirm", "affirm", "deny", "deny"]:
            await convo.say(intent)
        await convo.say("inform", browser="firefox")
        assert await convo.say("deny") == ["utter_step_private_window"]

    await up_to_the_private_window()
    assert await convo.say("deny") == ["utter_step_manual_upload", "utter_ask_manual_upload_result"]
    convo.slots.clear()
    convo.takes_files = True
    await up_to_the_private_window()
    assert await convo.say("deny") == ["utter_step_manual_upload", "utter_offer_file_check", "utter_ask_manual_upload_result"]


@pytest.mark.parametrize(
    "channel, metadata, expected",
    [
        ("slack", {}, True),
        ("botframework", None, True),
        ("socketio", {"capabilities": "file_upload"}, True),
        ("socketio", {"capabilities": "voice, file_upload"}, True),
        ("socketio", {}, False),  # rasa-webchat and other Rasa clients
        ("socketio", {"capabilities": "file_uploads"}, False),
        ("rest", {"capabilities": ["file_upload"]}, False),  # not the allow-listed string form
        ("rest", {}, False),
    ],
)
def test_which_clients_take_files(channel, metadata, expected):
    from bot.troubleshooting.conversation import takes_files

    assert takes_files(channel, metadata) is expected
