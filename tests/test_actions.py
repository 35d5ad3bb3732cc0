"""The Rasa SDK actions themselves: tracker in, events and messages out (bank sites served locally)."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import actions as sdk_actions
from bot.banks.directory import BankDirectory
from bot.desk import ActionServices
from tests import servers


@pytest.fixture(autouse=True)
def local_settings(fake_banks, tmp_path, monkeypatch):
    """The test settings (bank sites served locally) for the services the actions build."""
    settings = servers.write_test_settings(tmp_path / "bankfeed.yml", fake_banks.url("/canary/healthy"))
    monkeypatch.setenv("BANKFEED_SETTINGS", str(settings))


@pytest.fixture
async def services(fake_banks, tmp_path):
    """The action server's services of one test: the test directory, a hand-off database of its own."""
    directory = servers.write_test_directory(tmp_path / "banks.yml", fake_banks.base_url)
    built = ActionServices(f"sqlite:///{tmp_path / 'handoff.db'}", directory=BankDirectory.load(directory))
    yield built
    await built.aclose()


def tracker(intent: str, slots=None, entities=(), text="", confidence=0.95, ranking=None, metadata=None) -> Tracker:
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": ranking or [{"name": intent, "confidence": confidence}],
        "entities": [{"entity": e, "value": v} for e, v in entities],
        "metadata": metadata or {},
    }
    return Tracker("u1", slots or {}, message, [], False, None, {}, "action_listen")


def slot_events(events):
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def run(action, t):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {})
    return dispatcher.messages, events


async def test_troubleshoot_probes_the_bank_and_reports_what_it_saw(fake_banks, services):
    msgs, events = await run(
        sdk_actions.ActionTroubleshoot(services),
        tracker(
            "report_bank_unavailable",
            {"bank": "American Express", "error_code": "102"},
            [("bank", "American Express"), ("error_code", "102")],
        ),
    )
    assert [m["response"] for m in msgs] == ["utter_diagnosis_bank_unavailable", "utter_site_down", "utter_ask_bank_login"]
    slots = slot_events(events)
    assert slots["diagnosis"] == "bank_unavailable"
    assert slots["check_results"]["American Express"]["status"] == "down"
    assert "needs_bank" not in slots and "escalation_due" not in slots  # flags are written only when they change
    assert fake_banks.hits("/american-express/error500") >= 1


async def test_troubleshoot_acts_on_what_a_masked_message_meant(services):
    ranking = [{"name": "report_credentials", "confidence": 0.9}, {"name": "deny", "confidence": 0.05}]
    msgs, events = await run(
        sdk_actions.ActionTroubleshoot(services),
        tracker(
            "share_sensitive",
            {"bank": "Chase"},
            [("sensitive_data", "password"), ("bank", "Chase"), ("error_code", "103")],
            confidence=1.0,
            ranking=[{"name": "share_sensitive", "confidence": 1.0}] + ranking,
        ),
    )
    assert msgs[0]["response"] == "utter_sensitive_warning"
    assert slot_events(events)["diagnosis"] == "credentials"


async def test_troubleshoot_reads_the_browser_from_widget_metadata(services):
    ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
    slots = {
        "diagnosis": "bank_unavailable",
        "bank": "Chase",
        "steps_tried": ["site_check", "refresh", "credential_check"],
        "current_step": "credential_check",
        "credential_answers": {"advice_given": True},
    }
    msgs, events = await run(sdk_actions.ActionTroubleshoot(services), tracker("deny", slots, metadata={"user_agent": ua}))
    assert [m["response"] for m in msgs] == ["utter_clear_cache_safari"]
    assert slot_events(events)["browser"] == "safari"


ESCALATION_SLOTS = {
    "diagnosis": "bank_unavailable",
    "bank": "Chase",
    "error_code": "102",
    "steps_tried": ["site_check", "refresh"],
    "check_results": {"Chase": {"status": "up", "reason": "ok"}},
}


async def test_escalate_records_the_summary_queues_a_ticket_and_pauses(services):
    services.database.migrate()
    t = tracker("ask_human", ESCALATION_SLOTS)
    t.events = [
        {"event": "user", "text": "error 102 chase, my pw: Hunter2!x", "timestamp": 1.0},
        {"event": "bot", "text": "Let's check Chase.", "timestamp": 2.0},
    ]
    msgs, events = await run(sdk_actions.ActionEscalate(services), t)
    statuses = [e["value"] for e in events if e.get("event") == "slot" and e["name"] == "handoff_status"]
    assert statuses == ["requested", "waiting"]
    assert events[-1] == ConversationPaused()
    summary = slot_events(events)["escalation_summary"]
    assert summary["reason"] == "user_request"
    assert summary["steps_tried"] == ["site_check", "refresh"]
    assert summary["steps_remaining"][0] == "credential_check"
    assert msgs[0]["response"] == "utter_handoff_waiting" and msgs[0]["queue_position"] == "You're number 1 in the queue"
    ticket = services.tickets.open_ticket_for("u1")
    assert ticket.status == "waiting" and ticket.bank == "Chase" and ticket.error_code == "102"
    assert [line["text"] for line in ticket.transcript] == ["error 102 chase, my pw: [password removed]", "Let's check Chase."]


async def test_escalate_without_a_reachable_handoff_store_keeps_the_bot_answering(tmp_path):
    unmigrated = ActionServices(f"sqlite:///{tmp_path / 'missing-dir' / 'nothing' / 'x.db'}")
    msgs, events = await run(sdk_actions.ActionEscalate(unmigrated), tracker("ask_human", ESCALATION_SLOTS))
    assert msgs[0]["response"] == "utter_handoff_unavailable"
    assert slot_events(events)["handoff_status"] == "requested"
    assert ConversationPaused() not in events
    await unmigrated.aclose()


async def test_session_start_carries_slots_and_marks_a_returning_user():
    slots = {
        "diagnosis": "bank_unavailable",
        "bank": "Chase",
        "current_step": "refresh",
        "steps_tried": ["site_check"],
        "recent_replies": ["abc", "abc"],
    }
    msgs, events = await run(sdk_actions.ActionSessionStart(), tracker("session_start", slots))
    assert events[0] == SessionStarted()
    assert SlotSet("steps_tried", ["site_check"]) in events
    assert SlotSet("returning", True) in events  # the first message gets the welcome back (one question)
    assert not any(e.get("name") == "recent_replies" for e in events)
    assert events[-1] == ActionExecuted("action_listen")
    assert msgs == []  # nothing before the customer's own message: it would be a second question


async def test_session_start_for_a_new_user_says_nothing():
    msgs, events = await run(sdk_actions.ActionSessionStart(), tracker("session_start", {}))
    assert msgs == [] and events == [SessionStarted(), ActionExecuted("action_listen")]


class FakeUnknownBanks:
    """Stands in for bot.handoff.unknown_banks.UnknownBanks: ``record(name)``, blocking."""

    def __init__(self, fail: bool = False):
        self.names, self.fail = [], fail

    def record(self, name: str) -> None:
        if self.fail:
            raise RuntimeError("no such table: unknown_banks")
        self.names.append(name)


@pytest.mark.parametrize(
    "value, intent, entities, expected",
    [
        ("bofa", "inform", [("bank", "Bank of America")], {"bank_site": "Bank of America", "bank": "Bank of America"}),
        ("Wells Fargo", "inform", [], {"bank_site": "Wells Fargo", "bank": "Wells Fargo"}),
        (
            "https://online.smalltown.example/login",
            "inform",
            [("bank_url", "https://online.smalltown.example/login")],
            {"bank_site": "https://online.smalltown.example/login", "bank_url": "https://online.smalltown.example/login"},
        ),
        ("skip", "inform", [], {"bank_site": "skip"}),
        ("no idea", "dont_know", [], {"bank_site": "skip"}),
        ("First Farmers Bank", "inform", [], {"bank_site": "First Farmers Bank", "bank": "First Farmers Bank"}),
        ("Comerica", "nlu_fallback", [], {"bank_site": "Comerica", "bank": "Comerica"}),
        ("it's a credit union", "inform", [], {"bank_site": "skip"}),
        ("/deny", "deny", [], {"bank_site": "not_an_answer"}),
        ("what's the weather", "nlu_fallback", [], {"bank_site": "not_an_answer"}),
        ("how do I record a refund", "out_of_scope", [], {"bank_site": "not_an_answer"}),
        ("actually it works now", "fixed_it", [], {"bank_site": "not_an_answer"}),
    ],
)
async def test_bank_form_validation(value, intent, entities, expected, services):
    dispatcher = CollectingDispatcher()
    registry = FakeUnknownBanks()
    t = tracker(intent, {"requested_slot": "bank_site"}, entities, text=value)
    result = await sdk_actions.ValidateBankForm(services, unknown_banks=registry).validate_bank_site(value, dispatcher, t, {})
    assert result == expected
    assert dispatcher.messages == []  # nothing is quoted back; a non-answer is answered by the troubleshooter
    # only names of banks the directory lacks are counted, never payloads, questions or directory banks
    assert registry.names == ([expected["bank"]] if expected.get("bank") in ("First Farmers Bank", "Comerica") else [])


async def test_bank_form_goes_on_when_the_unknown_bank_registry_fails(services):
    t = tracker("inform", {"requested_slot": "bank_site"}, text="Farmers State Bank")
    result = await sdk_actions.ValidateBankForm(services, unknown_banks=FakeUnknownBanks(fail=True)).validate_bank_site(
        "Farmers State Bank", CollectingDispatcher(), t, {}
    )
    assert result == {"bank_site": "Farmers State Bank", "bank": "Farmers State Bank"}


async def test_bank_form_goes_on_without_the_registry_module(monkeypatch, services):
    import sys

    monkeypatch.setitem(sys.modules, "bot.handoff.unknown_banks", None)  # the module is missing: import fails
    t = tracker("inform", {"requested_slot": "bank_site"}, text="Comerica")
    result = await sdk_actions.ValidateBankForm(services).validate_bank_site("Comerica", CollectingDispatcher(), t, {})
    assert result == {"bank_site": "Comerica", "bank": "Comerica"}


async def test_bank_form_never_quotes_a_secret_and_asks_again_in_other_words(services):
    dispatcher = CollectingDispatcher()
    t = tracker(
        "nlu_fallback",
        {"requested_slot": "bank_site", "question": {"key": "utter_ask_bank_site", "count": 0}},
        text="my password is Hunter2Secret!",
    )
    result = await sdk_actions.ValidateBankForm(services, unknown_banks=FakeUnknownBanks()).validate_bank_site(
        "my password is Hunter2Secret!", dispatcher, t, {}
    )
    assert result == {"bank_site": None, "question": {"key": "utter_ask_bank_site", "count": 1}}
    assert dispatcher.messages[0]["response"] == "utter_sensitive_warning"
    assert "Hunter2" not in str(dispatcher.messages)
    msgs, _ = await run(sdk_actions.ActionAskBankSite(), tracker("nlu_fallback", {"question": result["question"]}))
    assert [m["response"] for m in msgs] == ["utter_reask_bank_site"]


async def test_the_bank_form_asked_again_in_the_same_turn_does_not_reread_the_message(services):
    t = tracker(
        "deny",
        {"requested_slot": "bank_site", "question": {"key": "utter_ask_bank_site", "count": 1, "after": "m1"}},
        text="/deny",
    )
    t.latest_message["message_id"] = "m1"  # the troubleshooter already handled this message
    result = await sdk_actions.ValidateBankForm(services, unknown_banks=FakeUnknownBanks()).validate_bank_site(
        "/deny", CollectingDispatcher(), t, {}
    )
    assert result == {"bank_site": None}  # so the form asks


async def test_the_bank_question_is_worded_differently_each_time():
    asked = []
    for count in range(6):
        msgs, _ = await run(
            sdk_actions.ActionAskBankSite(), tracker("inform", {"question": {"key": "utter_ask_bank_site", "count": count}})
        )
        asked.append(msgs[0]["response"])
    assert asked[0] == "utter_ask_bank_site" and "utter_bank_site_offer_skip" in asked[2:4]
    assert all(a != b for a, b in zip(asked, asked[1:]))


def test_troubleshooter_lets_rasa_skip_the_policy_run_only_when_the_rules_would_listen():
    from rasa_sdk import Tracker
    from rasa_sdk.events import FollowupAction

    from actions.actions import listen_next

    def tracker(active_loop=None):
        return Tracker("s", {}, {}, [], False, None, {"name": active_loop} if active_loop else {}, "action_troubleshoot")

    assert listen_next(tracker(), {"needs_bank": False, "escalation_due": False}) == [FollowupAction("action_listen")]
    assert listen_next(tracker(), {"needs_bank": True, "escalation_due": False}) == []  # the bank form comes next
    assert listen_next(tracker(), {"needs_bank": False, "escalation_due": True}) == []  # the escalation comes next
    assert listen_next(tracker("bank_form"), {"needs_bank": False, "escalation_due": False}) == []  # the form resumes
