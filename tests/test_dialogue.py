"""The dialogue design (bot/troubleshooting/conversation.py) turn by turn, in-process: free text where buttons were
offered, no reply three times in a row, one question per turn, the honest record, relapses, returns and
the "wait a day" reminder. What the customer reads is rendered from domain.yml."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bot.banks.directory import BankDirectory
from bot.handoff.desk import transcript
from bot.handoff.escalation import handoff_slots, summary_text
from bot.troubleshooting import bank_question as bq
from bot.troubleshooting import steps as ts
from bot.troubleshooting.conversation import State, Turn
from tests.test_conversation import Conversation, RadarDesk, bank_site, convo, directory, product_db  # noqa: F401  (fixtures below reuse them)  # noqa: F401

DOMAIN = yaml.safe_load((Path(__file__).resolve().parent.parent / "domain.yml").read_text())
RESPONSES = DOMAIN["responses"]


def rendered(message: dict) -> dict:
    """What the customer reads for one message of a reply: its text and buttons."""
    if "response" not in message:
        return {"text": message["text"], "buttons": []}
    template = RESPONSES[message["response"]][0]
    variables = {k: v for k, v in message.items() if k != "response"}
    text = re.sub(r"\{(\w+)\}", lambda m: str(variables.get(m.group(1), m.group(0))), template["text"])
    return {"text": text, "buttons": template.get("buttons") or []}


def questions_in(messages) -> int:
    """How many questions a reply asks: messages with buttons, or ending with a question mark."""
    return sum(1 for m in map(rendered, messages) if m["buttons"] or m["text"].rstrip().endswith("?"))


class FakeReminders:
    def __init__(self, ok: bool = True):
        self.topics, self.ok = [], ok

    async def schedule(self, topic: str) -> bool:
        self.topics.append(topic)
        return self.ok


# --------------------------------------------------------------------------- free text at a step
async def test_a_browser_name_at_did_the_feed_update_is_noted_then_the_question_varies(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("deny") == ["utter_step_refresh"]
    first = await convo.say("inform", browser="chrome")
    assert first == ["utter_noted_browser", "utter_reask_refresh"]
    assert convo.slots["browser"] == "chrome"
    second = await convo.say("inform", browser="chrome")
    assert second == ["utter_offer_skip_or_person"]  # the browser is known now: not noted again
    third = await convo.say("inform", browser="chrome")
    assert third != second
    replies = [first, second, third]
    for _ in range(8):  # "chrome" for ever: never the same reply three times in a row, never progress lost
        replies.append(await convo.say("inform", browser="chrome"))
    assert all(not (a == b == c) for a, b, c in zip(replies, replies[1:], replies[2:]))
    # not even one message of a reply: no response is said in three turns running
    for a, b, c in zip(replies, replies[1:], replies[2:]):
        assert not (set(a) & set(b) & set(c)), (a, b, c)
    assert convo.slots["current_step"] == ts.REFRESH
    # then the browser is used when the cache step comes
    assert await convo.say("deny") == ["utter_cred_login_works"]
    for _ in range(4):
        await convo.say("affirm")
    await convo.say("deny")  # not a new account: the advice, then "did it update?"
    assert await convo.say("deny") == ["utter_clear_cache_chrome"]


async def test_unclear_answers_re_ask_in_other_words_then_offer_skip_or_a_person(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("nlu_fallback") == ["utter_reask_refresh"]
    assert await convo.say("nlu_fallback") == ["utter_offer_skip_or_person"]
    assert convo.variables("utter_offer_skip_or_person")["step_title"] == "refreshing the connection"
    assert await convo.say("nlu_fallback") == ["utter_still_unclear"]
    assert await convo.say("skip_step") == ["utter_step_skipped_on_request", "utter_cred_login_works"]
    assert convo.slots["step_outcomes"][ts.REFRESH] == ts.OUTCOME_SKIPPED_BY_CUSTOMER
    assert convo.slots["question"] == {"key": "utter_cred_login_works", "count": 0}  # a fresh question, fresh count


async def test_i_dont_know_and_what_do_you_mean(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("dont_know") == ["utter_how_to_tell"]  # how to see whether the feed works
    assert await convo.say("deny") == ["utter_cred_login_works"]
    assert await convo.say("explain_step") == ["utter_reask_cred_login_works"]
    assert await convo.say("affirm") == ["utter_cred_same_user_id"]
    assert await convo.say("dont_know") == ["utter_cred_password_changed"]  # "No / not sure"
    assert convo.slots["credential_answers"]["same_user_id"] is False


async def test_a_new_error_code_at_a_step_is_a_new_report(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    replies = await convo.say("nlu_fallback", error_code="103")
    assert replies[:2] == ["utter_topic_switched", "utter_diagnosis_credentials"]


async def test_yes_to_notify_me_is_not_yes_its_fixed(convo, product_db):
    desk = RadarDesk(product_db)
    for i in range(3):
        desk.radar.record_report("Chase", "bank_unavailable", f"other-{i}", verified=True)
    convo.bot.outages = desk
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    assert await convo.say("affirm") == ["utter_outage_notice_confirmed", "utter_ask_manual_upload_result"]
    assert convo.slots.get("resolved") is not True


# --------------------------------------------------------------------------- never three times, one question
@pytest.mark.parametrize("seed", range(6))
async def test_a_long_random_conversation_never_repeats_a_reply_three_times_and_asks_one_question(convo, seed):
    rng = random.Random(seed)
    moves = [
        ("deny", {}),
        ("affirm", {}),
        ("nlu_fallback", {}),
        ("inform", {"browser": "chrome"}),
        ("thank", {}),
        ("already_tried", {}),
        ("dont_know", {}),
        ("explain_step", {}),
        ("greet", {}),
        ("continue_troubleshooting", {}),
        ("ask_capabilities", {}),
        ("inform", {}),
        ("bot_challenge", {}),
        ("skip_step", {}),
    ]
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    seen = []
    for _ in range(60):
        if convo.slots.get("escalation_due") or convo.slots.get("resolved"):
            break
        intent, entities = rng.choice(moves)
        await convo.say(intent, **entities)
        texts = [rendered(m)["text"] for m in convo.messages]
        seen.append(texts)
        assert questions_in(convo.messages) <= 1, texts
        assert sum(1 for m in map(rendered, convo.messages) if m["buttons"]) <= 1, texts
    assert all(not (a == b == c) for a, b, c in zip(seen, seen[1:], seen[2:]))


async def test_the_same_message_again_and_again_gets_a_way_out(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    replies = [await convo.say("thank") for _ in range(3)]
    assert replies[0] == replies[1] == ["utter_you_are_welcome"]
    assert replies[2] == ["utter_going_in_circles"]


async def test_the_outage_path_asks_one_question_per_turn(convo, product_db):
    desk = RadarDesk(product_db)
    for i in range(3):
        desk.radar.record_report("Chase", "bank_unavailable", f"other-{i}", verified=True)
    convo.bot.outages = desk
    turns = [await convo.say("report_bank_unavailable", error_code="102", bank="Chase")]
    assert questions_in(convo.messages) == 1
    assert sum(len(rendered(m)["buttons"]) for m in convo.messages) == 3  # one set of buttons
    for intent in ("deny", "deny", "remind_me"):
        turns.append(await convo.say(intent))
        assert questions_in(convo.messages) <= 1, turns[-1]
    assert turns[1] == ["utter_ask_manual_upload_result"]  # "no thanks" to the notice: on with the upload
    assert turns[2] == ["utter_step_wait_a_day"]


def test_every_message_fits_one_phone_screen():
    """At most 520 characters and 8 lines per message: long instructions are numbered short steps."""
    for name, variants in RESPONSES.items():
        text = variants[0]["text"]
        assert len(text) <= 520 and text.count("\n") < 8, name
        if len(text) > 300 and name.startswith("utter_step_"):
            assert "\n1. " in text, name


# --------------------------------------------------------------------------- the honest record
async def test_after_an_outage_the_record_says_what_was_skipped_not_tried(convo, product_db):
    desk = RadarDesk(product_db)
    for i in range(3):
        desk.radar.record_report("Chase", "bank_unavailable", f"other-{i}", verified=True)
    convo.bot.outages = desk
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")  # no notice
    await convo.say("deny")  # uploaded, feed still failing
    assert await convo.say("ask_human") == ["utter_escalated_on_request"]  # a person instead of waiting a day
    summary = handoff_slots(convo.slots, now=0)["escalation_summary"]
    assert summary["steps_walked"] == [ts.MANUAL_UPLOAD]
    assert summary["steps_tried"] == [ts.MANUAL_UPLOAD]
    assert set(summary["steps_skipped"]) == {
        ts.SITE_CHECK,
        ts.REFRESH,
        ts.CREDENTIAL_CHECK,
        ts.CLEAR_CACHE,
        ts.PRIVATE_WINDOW,
        ts.WAIT_A_DAY,
    }
    assert "known outage" in summary["steps_skipped"][ts.REFRESH]
    assert summary["steps_skipped"][ts.WAIT_A_DAY] == "the customer chose to talk to a person instead"
    assert summary["reason"] == "user_request"
    text = summary_text(summary)
    assert "walked through: uploading transactions manually" in text
    assert "checking your sign-in details (the bank has a known outage" in text
    assert "tried: checking" not in text and "Tried every fix" not in text


async def test_the_closing_summary_after_an_outage_does_not_claim_the_skipped_fixes(convo, product_db):
    desk = RadarDesk(product_db)
    for i in range(3):
        desk.radar.record_report("Chase", "bank_unavailable", f"other-{i}", verified=True)
    convo.bot.outages = desk
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("fixed_it") == ["utter_resolved", "utter_prevention_tips"]
    summary = convo.variables("utter_resolved")["summary"]
    assert summary.startswith("Error 102 with Chase was fixed by uploading transactions manually")
    assert "we skipped checking the bank's website, refreshing the connection, checking your sign-in details" in summary
    assert "we went through" not in summary


async def test_already_tried_is_the_customers_word_and_the_credential_answers_reach_the_ticket(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    await convo.say("already_tried")  # refresh: the customer had done it before
    for answer in ("affirm", "deny", "affirm", "deny", "deny"):
        await convo.say(answer)
    await convo.say("deny")  # edit sign-in didn't help
    await convo.say("ask_human")
    await convo.say("ask_human")
    summary = handoff_slots(convo.slots, now=0)["escalation_summary"]
    assert summary["steps_walked"] == [ts.SITE_CHECK, ts.CREDENTIAL_CHECK]
    assert summary["steps_already_tried"] == [ts.REFRESH]
    text = summary_text(summary)
    assert "customer had already tried: refreshing the connection" in text
    assert (
        "sign-in check: can sign in on the bank's site, user ID in QuickBooks differs or not sure, "
        "bank password changed recently, third-party access off or not found, not a new account"
    ) in text
    assert summary["reason"] == "user_request"


def test_a_ticket_never_says_every_fix_was_tried_beside_nothing_tried():
    slots = {
        "diagnosis": "bank_unavailable",
        "steps_tried": list(ts.COMMON_STEPS),
        "step_outcomes": {s: ts.OUTCOME_SKIPPED_OUTAGE for s in ts.COMMON_STEPS},
    }
    summary = handoff_slots(slots, now=0)["escalation_summary"]
    assert summary["reason"] == "no_fix_left" and summary["steps_tried"] == []


def test_transcripts_show_the_button_clicked_not_its_payload():
    events = [
        {
            "event": "bot",
            "text": "Did the feed update?",
            "timestamp": 1.0,
            "data": {"buttons": [{"title": "No, still failing", "payload": "/deny"}]},
        },
        {"event": "user", "text": "/deny", "timestamp": 2.0},
        {"event": "user", "text": "/ask_human", "timestamp": 3.0},
        {"event": "user", "text": '/inform{"browser":"chrome"}', "timestamp": 4.0},
    ]
    assert [line["text"] for line in transcript(events)][1:] == [
        "No, still failing",
        "Talk to a person",
        '/inform{"browser":"chrome"}',
    ]


# --------------------------------------------------------------------------- relapse and resumption
async def test_it_broke_again_after_fixed_goes_on_from_there(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    await convo.say("fixed_it")  # the refresh seemed to work
    assert convo.slots["resolved"] is True
    assert await convo.say("relapse") == ["utter_relapse", "utter_cred_login_works"]
    assert convo.slots["resolved"] is False
    assert convo.slots["step_outcomes"][ts.REFRESH] == ts.OUTCOME_RELAPSED
    assert convo.steps_tried == [ts.SITE_CHECK, ts.REFRESH]  # nothing lost, nothing repeated
    assert "refreshing the connection" in convo.variables("utter_relapse")["steps_done"]


async def test_the_same_error_reported_after_fixed_is_a_relapse_too(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("fixed_it")
    replies = await convo.say("report_bank_unavailable", error_code="102")
    assert replies == ["utter_relapse", "utter_step_refresh"]


async def test_a_relapse_with_no_steps_left_escalates_with_the_record(convo):
    convo.slots.update(
        {
            "diagnosis": "bank_unavailable",
            "bank": "Chase",
            "error_code": "102",
            "steps_tried": list(ts.COMMON_STEPS),
            "resolved": True,
            "step_outcomes": {**{s: ts.OUTCOME_FAILED for s in ts.COMMON_STEPS}, ts.WAIT_A_DAY: ts.OUTCOME_FIXED},
            "topics": {"current": "bank_unavailable|Chase"},
        }
    )
    assert await convo.say("relapse") == ["utter_relapse", "utter_escalating"]
    assert convo.slots["escalation_due"] is True
    assert handoff_slots(convo.slots, now=0)["escalation_summary"]["reason"] == "relapsed_after_every_step"


async def test_my_other_bank_is_a_new_topic_without_the_first_bank_and_back(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    replies = await convo.say("report_credentials", text="also my other bank shows 103", error_code="103")
    assert replies[0] == "utter_topic_switched"
    assert convo.slots["bank"] is None  # not Chase: "my other bank"
    assert convo.variables("utter_topic_switched")["topic"] == "the sign-in mismatch (Error 103)"
    replies = await convo.say("report_bank_unavailable", text="ok back to the 102", error_code="102")
    assert replies == ["utter_topic_resumed", "utter_step_refresh"]
    assert convo.slots["bank"] == "Chase" and convo.steps_tried == [ts.SITE_CHECK]


async def test_the_same_error_at_my_other_bank_is_a_new_topic(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    replies = await convo.say("report_bank_unavailable", text="my other bank has 102 too", error_code="102")
    assert replies[0] == "utter_topic_switched" and convo.slots["bank"] is None
    assert convo.slots["needs_bank"] is True  # its site check needs the bank's name
    assert "bank_unavailable|Chase" in convo.slots["topics"]["saved"]


async def test_a_customer_returning_the_next_day_is_asked_whether_it_is_the_same_problem(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    convo.slots["returning"] = True  # what action_session_start sets for a new session
    assert await convo.say("greet") == ["utter_welcome_back"]
    assert convo.variables("utter_welcome_back")["last_step"] == "refreshing the connection"
    assert convo.slots["returning"] is False
    assert await convo.say("affirm") == ["utter_step_refresh"]  # yes, the same problem: go on


async def test_a_returning_customer_who_says_what_happened_gets_a_short_welcome(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    convo.slots["returning"] = True
    assert await convo.say("deny") == ["utter_welcome_back_short", "utter_cred_login_works"]


async def test_a_returning_customer_with_something_else(convo):
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    convo.slots["returning"] = True
    await convo.say("greet")
    assert await convo.say("deny") == ["utter_ask_what_now"]


# --------------------------------------------------------------------------- wait a day
async def _at_wait_a_day(convo):
    convo.slots.update(
        {
            "diagnosis": "bank_unavailable",
            "bank": "Chase",
            "error_code": "102",
            "steps_tried": list(ts.COMMON_STEPS[:-1]),
            "step_outcomes": {s: ts.OUTCOME_FAILED for s in ts.COMMON_STEPS[:-1]},
            "topics": {"current": "bank_unavailable|Chase"},
            "current_step": ts.MANUAL_UPLOAD,
        }
    )
    assert await convo.say("deny") == ["utter_step_wait_a_day"]


async def test_wait_a_day_cannot_be_answered_still_failing_a_second_later(convo):
    await _at_wait_a_day(convo)
    assert "/deny" not in [b["payload"] for b in RESPONSES["utter_step_wait_a_day"][0]["buttons"]]
    assert await convo.say("deny") == ["utter_wait_too_soon"]
    assert await convo.say("deny") == ["utter_reask_wait_a_day"]
    assert convo.slots.get("escalation_due") is not True


async def test_check_back_tomorrow_then_still_failing_opens_the_ticket(convo):
    reminders = FakeReminders()
    convo.bot.reminders = reminders
    await _at_wait_a_day(convo)
    assert await convo.say("remind_me") == ["utter_reminder_scheduled"]
    assert reminders.topics == ["Error 102 with Chase"]
    assert convo.slots["wait_day"]["choice"] == "reminder" and convo.slots["reminder_status"] == "scheduled"
    convo.slots["reminder_status"] = "sent"  # the reminder reached the customer (bot/server/outages.py)
    assert await convo.say("deny") == ["utter_escalating"]
    summary = handoff_slots(convo.slots, now=0)["escalation_summary"]
    assert summary["reason"] == "still_failing_after_a_day"
    assert summary["wait_choice"] == "reminder" and ts.WAIT_A_DAY in summary["steps_walked"]
    assert "waited a day after a reminder" in summary_text(summary)


async def test_a_reminder_that_cannot_be_saved_offers_a_person(convo):
    convo.bot.reminders = FakeReminders(ok=False)
    await _at_wait_a_day(convo)
    assert await convo.say("remind_me") == ["utter_reminder_unavailable"]
    assert await convo.say("ask_human") == ["utter_escalated_on_request"]
    assert convo.slots["wait_day"]["choice"] == "person"


# --------------------------------------------------------------------------- the bank question
@pytest.mark.parametrize(
    "text, intent, confidence, entities, kind, name",
    [
        ("Comerica", "nlu_fallback", 0.3, {}, bq.UNLISTED, "Comerica"),
        ("banana", "inform", 0.6, {}, bq.UNLISTED, "banana"),
        ("we bank with Farmers State Bank", "inform", 0.9, {}, bq.UNLISTED, "Farmers State Bank"),
        ("a local credit union", "inform", 0.9, {}, bq.UNLISTED, None),
        ("/deny", "deny", 1.0, {}, bq.NOT_AN_ANSWER, None),
        ("/skip_step", "skip_step", 1.0, {}, bq.SKIP, None),
        ("what's the weather", "nlu_fallback", 0.4, {}, bq.NOT_AN_ANSWER, None),
        ("how do I record a refund", "out_of_scope", 0.9, {}, bq.NOT_AN_ANSWER, None),
        ("no", "deny", 0.95, {}, bq.NOT_AN_ANSWER, None),
        ("talk to a person", "ask_human", 0.97, {}, bq.NOT_AN_ANSWER, None),
        ("chase", "inform", 0.99, {"bank": "Chase"}, bq.BANK, None),
        ("my password is Hunter2Secret!", "nlu_fallback", 0.2, {}, bq.SECRET, None),
        (
            "I paste a whole paragraph here about how my accountant set up the feed last spring and since then nothing",
            "nlu_fallback",
            0.3,
            {},
            bq.NOT_AN_ANSWER,
            None,
        ),
    ],
)
def test_the_bank_question_classifies_before_taking_a_name(text, intent, confidence, entities, kind, name):
    directory = BankDirectory.default()
    answer = bq.classify(text, intent, confidence, entities, directory)
    assert answer.kind == kind
    if kind == bq.UNLISTED:
        assert answer.name == name


async def test_a_bank_not_in_the_directory_goes_on_without_the_site_check(convo, bank_site):
    assert await convo.say("report_bank_unavailable", error_code="102") == ["utter_diagnosis_bank_unavailable"]
    assert convo.slots["needs_bank"] is True and convo.slots["question"]["key"] == "utter_ask_bank_site"
    convo.slots.update({"bank": "Comerica", "bank_site": "Comerica"})  # what the bank form sets
    assert await convo.say("nlu_fallback") == ["utter_site_unlisted", "utter_ask_bank_login"]
    assert bank_site.total_hits() == 0
    assert await convo.say("deny") == ["utter_step_refresh"]
    assert convo.slots["needs_bank"] is False


async def test_a_question_instead_of_the_bank_is_answered_then_the_bank_asked_again(convo):
    await convo.say("report_bank_unavailable", error_code="102")
    convo.slots["bank_site"] = "not_an_answer"  # the form handed the message back
    assert await convo.say("out_of_scope", text="how do I record a refund") == ["utter_out_of_scope"]
    assert convo.slots["needs_bank"] is True  # the form asks again, in other words
    assert convo.slots["question"] == {"key": "utter_ask_bank_site", "count": 1}
    assert convo.slots["diagnosis"] == "bank_unavailable"


async def test_a_button_of_an_earlier_message_at_the_bank_question(convo):
    await convo.say("report_bank_unavailable", error_code="102")
    counts = []
    for _ in range(6):
        convo.slots["bank_site"] = "not_an_answer"
        await convo.say("deny", text="/deny")
        counts.append(convo.slots["question"].get("count"))
        if not convo.slots.get("needs_bank"):
            break
    # asked again with rising counts (different wordings), then the bot goes on without the check
    assert counts[:4] == [1, 2, 3, 4]
    assert convo.responses == ["utter_site_skipped", "utter_ask_bank_login"]
    assert convo.slots["bank_site"] == "skip"


# --------------------------------------------------------------------------- reminders, with a clock
class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def reminder_store(tmp_path):
    from bot.db.engine import Database

    clock = Clock()
    db = Database(f"sqlite:///{tmp_path / 'reminders.db'}", clock=clock)
    db.migrate()
    yield db, clock
    db.dispose()


async def test_a_reminder_is_due_a_day_later_and_sent_once(reminder_store):
    from bot.outages.reminders import ReminderBook, ReminderSender, ReminderSettings

    store, clock = reminder_store
    book = ReminderBook(store, ReminderSettings(delay_hours=24))
    first = book.schedule("rest-abc", "socketio", "Error 102 with Chase")
    assert first.channel == "rest"  # the conversation id's channel, whatever the caller says
    assert book.schedule("rest-abc", "rest", "Error 102 with Chase").id == first.id  # one pending per conversation
    delivered = []

    async def deliver(reminder):
        delivered.append(reminder)

    sender = ReminderSender(book, deliver)
    clock.now += timedelta(hours=23)
    assert await sender.run_once() == 0
    clock.now += timedelta(hours=2)
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0  # exactly once
    assert delivered[0].conversation_id == "rest-abc" and "Error 102 with Chase" in delivered[0].text
    assert [r.id for r in book.sent_to("rest-abc")] == [first.id]
    assert book.pending("rest-abc") is None


def test_a_conversation_state_from_old_slots_still_loads():
    state = State.from_slots({"diagnosis": "bank_unavailable", "steps_tried": ["site_check"], "unknown_slot": 1})
    assert state.question == {} and state.recent_replies == [] and state.returning is False
    assert Turn(intent="deny").text is None


async def test_a_sign_in_address_for_an_unlisted_bank_is_checked_whatever_its_intent(convo, bank_site):
    await convo.say("report_bank_unavailable", error_code="102")
    convo.slots.update({"bank": "Farmers State Bank", "bank_site": "Farmers State Bank"})
    assert await convo.say("nlu_fallback") == ["utter_site_unlisted", "utter_ask_bank_login"]
    url = bank_site.url("/farmers/error500")
    replies = await convo.say("out_of_scope", text=url, bank_url=url)  # a bare URL may read as anything
    assert replies == ["utter_site_down", "utter_ask_bank_login"]
    assert convo.slots["diagnosis"] == "bank_unavailable" and convo.slots["check_results"][url]["status"] == "down"


async def test_skip_and_check_back_tomorrow_typed_are_read_whatever_the_classifier_said(convo):
    convo.bot.reminders = FakeReminders()
    await convo.say("report_bank_unavailable", error_code="102", bank="Chase")
    await convo.say("deny")
    assert await convo.say("nlu_fallback", text="skip this step") == ["utter_step_skipped_on_request", "utter_cred_login_works"]
    await _at_wait_a_day(convo)
    assert await convo.say("out_of_scope", text="ok check back tomorrow") == ["utter_reminder_scheduled"]
    # "tomorrow" elsewhere is not a reminder request
    convo.slots["reminder_status"] = None
    assert await convo.say("out_of_scope", text="is it going to rain tomorrow") == ["utter_out_of_scope"]
