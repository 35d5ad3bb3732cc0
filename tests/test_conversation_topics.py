"""Off-topic and adjacent bank-feed questions in the troubleshooting conversation (bot/troubleshooting/conversation.py),
turn by turn and in-process: short answers, the bank-problem gate's clarifying question, and a real
problem report still starting its flow afterwards."""

from __future__ import annotations

from typing import List, Optional, Tuple

from bot.troubleshooting import diagnosis as dx
from bot.troubleshooting import steps as ts
from bot.troubleshooting.conversation import State, Turn
from tests.test_conversation import Conversation, bank_site, convo, directory  # noqa: F401 (fixtures)


async def typed(
    c: Conversation, intent: str, text: str, ranking: Optional[List[Tuple[str, float]]] = None, **entities: str
) -> List[str]:
    """Like ``Conversation.say`` but with what the user typed and the classifier's ranking, as Rasa gives them."""
    for name, value in entities.items():
        if name in ("bank", "error_code", "browser", "bank_url"):
            c.slots[name] = value
    turn = Turn(intent=intent, entities={k: [v] for k, v in entities.items()}, text=text, ranking=ranking or [(intent, 0.8)])
    reply = await c.bot.handle(State.from_slots(c.slots), turn)
    c.slots.update(reply.slots)
    c.messages = reply.messages
    c.responses = [m.get("response") or m["text"] for m in reply.messages]
    return c.responses


async def test_a_tax_question_misread_as_error_102_gets_a_question_not_the_flow(convo, bank_site):
    ranking = [("report_bank_unavailable", 0.97), ("out_of_scope", 0.02), ("ask_download_window", 0.01)]
    replies = await typed(convo, "report_bank_unavailable", "what's the quarterly tax rate", ranking)
    assert replies == ["utter_clarify_topic"]
    buttons = convo.variables("utter_clarify_topic")["buttons"]
    assert [b["payload"] for b in buttons] == ["/report_bank_unavailable", "/ask_download_window", "/out_of_scope"]
    assert convo.slots.get("diagnosis") is None and convo.slots.get("current_step") is None
    assert bank_site.hits("/chase/healthy") == 0  # nothing was checked
    # "Something else": the out-of-scope answer
    assert await convo.say("out_of_scope") == ["utter_out_of_scope"]
    # a real report afterwards starts its flow as usual
    replies = await typed(convo, "report_bank_unavailable", "error 102 on chase", error_code="102", bank="Chase")
    assert replies == ["utter_diagnosis_bank_unavailable", "utter_site_up", "utter_ask_bank_login"]
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE


async def test_choosing_the_bank_error_button_starts_that_flow(convo):
    await typed(convo, "report_credentials", "my bookkeeper left", [("report_credentials", 0.7)])
    assert convo.responses == ["utter_clarify_topic"]
    # the button's payload comes back as the message text, with full confidence
    replies = await typed(convo, "report_credentials", "/report_credentials", [("report_credentials", 1.0)], bank="Chase")
    assert replies[0] == "utter_diagnosis_credentials"
    assert convo.slots["current_step"] == ts.CREDENTIAL_CHECK


async def test_an_adjacent_question_gets_its_short_answer_and_no_flow(convo):
    replies = await typed(convo, "ask_duplicate_transactions", "duplicate transactions after reconnecting")
    assert replies == ["utter_adjacent_duplicate_transactions"]
    assert convo.slots.get("diagnosis") is None and convo.slots.get("current_step") is None


async def test_an_adjacent_question_mid_flow_keeps_the_pending_step(convo):
    await typed(convo, "report_bank_unavailable", "error 102 chase", error_code="102", bank="Chase")
    await convo.say("deny")
    assert convo.slots["current_step"] == ts.REFRESH
    assert await typed(convo, "ask_download_window", "how far back does it download") == ["utter_adjacent_download_window"]
    assert convo.slots["current_step"] == ts.REFRESH and convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE
    assert await convo.say("deny") == ["utter_cred_login_works"]  # the flow goes on where it was


async def test_a_sign_free_bank_error_reading_mid_flow_asks_about_the_pending_step(convo):
    await typed(convo, "report_bank_unavailable", "error 102 chase", error_code="102", bank="Chase")
    replies = await typed(convo, "report_credentials", "how do i record a refund from chase", bank="Chase")
    assert replies == ["utter_reask_site_check"]  # the pending question again, in other words
    assert convo.slots["diagnosis"] == dx.BANK_UNAVAILABLE and convo.slots["current_step"] == ts.SITE_CHECK
    assert convo.steps_tried == []  # nothing was counted as tried


async def test_an_unsure_message_without_a_sign_gets_the_topic_question(convo):
    ranking = [("nlu_fallback", 0.5), ("ask_match_categorise", 0.4), ("report_connection_failure", 0.3)]
    replies = await typed(convo, "nlu_fallback", "how do i do the thing with the for rev items", ranking)
    assert replies == ["utter_clarify_topic"]
    payloads = [b["payload"] for b in convo.variables("utter_clarify_topic")["buttons"]]
    assert payloads == ["/report_connection_failure", "/ask_match_categorise", "/out_of_scope"]
    # unsure but with a sign of a bank problem: the list of bank errors, as before
    assert await typed(convo, "nlu_fallback", "my bank feed is acting weird", ranking) == ["utter_clarify"]


async def test_a_bank_named_question_that_is_no_problem_is_out_of_scope(convo):
    replies = await typed(convo, "out_of_scope", "how do i record interest from my capital one savings", bank="Capital One")
    assert replies == ["utter_out_of_scope"]
    assert convo.slots["diagnosis"] == dx.OUT_OF_SCOPE and convo.slots.get("current_step") is None
