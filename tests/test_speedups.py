"""The Rasa speed-ups keep Rasa's behaviour: same validation errors, same event classes."""
import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

from bot.server import rasa_patches as speedups


def test_applied_for_this_rasa():
    assert speedups.apply() is True


def test_action_responses_are_still_validated():
    speedups.apply()
    action = RemoteAction("action_troubleshoot", None)
    assert action._validate_action_result({"events": [{"event": "slot", "name": "x", "value": 1}], "responses": []})
    with pytest.raises(ValidationError) as err:
        action._validate_action_result({"events": "not a list"})
    assert "Failed to validate Action server response" in err.value.message


def test_event_classes_resolve_the_same():
    speedups.apply()
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("action") is ActionExecuted
    assert Event.resolve_by_type("nonsense", SlotSet) is SlotSet
    with pytest.raises(ValueError):
        Event.resolve_by_type("nonsense")
    assert Event.from_parameters({"event": "slot", "name": "a", "value": 2}) == SlotSet("a", 2)


# ---------------------------------------------------------------- the per-type shortcut is exact

from hypothesis import given, settings, strategies as st  # noqa: E402
from rasa.shared.core.events import (  # noqa: E402
    ActionExecutionRejected, ActiveLoop, AgentUttered, AllSlotsReset, BotUttered, ConversationPaused,
    ConversationResumed, EntitiesAdded, FollowupAction, ReminderCancelled, ReminderScheduled, Restarted,
    SessionStarted, UserUtteranceReverted,
)

import jsonschema  # noqa: E402

SPEC = RemoteAction.action_response_format_spec()
VALIDATOR = speedups.ActionResponseValidator(SPEC)
REAL_EVENTS = [
    e.as_dict()
    for e in (
        SlotSet("bank", "Chase"), SlotSet("steps_tried", ["site_check"]), BotUttered("hi", {"buttons": []}),
        UserUttered("error 102", {"name": "report_bank_unavailable", "confidence": 0.9},
                    [{"entity": "bank", "value": "Chase", "start": 0, "end": 5}]),
        ActionExecuted("action_listen"), ConversationPaused(), ConversationResumed(), Restarted(),
        FollowupAction("action_escalate"), ActiveLoop("bank_form"), ActiveLoop(None), AllSlotsReset(),
        SessionStarted(), UserUtteranceReverted(), AgentUttered("an agent"), ActionExecutionRejected("x"),
        EntitiesAdded([{"entity": "bank", "value": "Chase"}]), ReminderCancelled("r"),
        ReminderScheduled("intent", __import__("datetime").datetime(2030, 1, 1)),
    )
]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
EVENT_TYPES = sorted(VALIDATOR.per_type) + ["nonsense", ""]


@st.composite
def mutated_event(draw):
    """A real event, or one with a key replaced, added or dropped: valid and invalid ones alike."""
    event = dict(draw(st.sampled_from(REAL_EVENTS)))
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.integers(0, 3))
        if choice == 0 and event:
            event.pop(draw(st.sampled_from(sorted(event))))
        elif choice == 1:
            event["event"] = draw(st.sampled_from(EVENT_TYPES) | JSONISH)
        elif choice == 2 and event:
            event[draw(st.sampled_from(sorted(event)))] = draw(JSONISH)
        else:
            event[draw(st.sampled_from(["name", "value", "text", "timestamp", "metadata", "entities"]))] = draw(JSONISH)
    return event


@given(
    st.lists(mutated_event() | JSONISH, max_size=4),
    st.sampled_from(["events-list", "events-other", "no-events", "not-a-dict"]),
    st.one_of(st.none(), st.lists(st.dictionaries(st.text(max_size=3), JSONISH, max_size=2), max_size=2), JSONISH),
)
@settings(max_examples=400, deadline=None)
def test_shortcut_accepts_and_rejects_exactly_what_the_schema_does(events, shape, responses):
    if shape == "events-list":
        result = {"events": events, "responses": responses}
    elif shape == "events-other":
        result = {"events": responses}
    elif shape == "no-events":
        result = {"responses": responses}
    else:
        result = events
    try:
        jsonschema.validate(result, SPEC)  # what Rasa 3.6 itself calls
        rasa_error = None
    except ValidationError as err:
        rasa_error = err
    try:
        VALIDATOR.validate(result)
        ours = None
    except ValidationError as err:
        ours = err
    assert (ours is None) == (rasa_error is None)
    if ours is not None:
        assert (ours.message, list(ours.path)) == (rasa_error.message, list(rasa_error.path))
    expected = rasa_error is None
    if VALIDATOR.is_valid_fast(result):
        assert expected  # the shortcut never accepts what the schema rejects


def test_shortcut_covers_every_event_type_of_the_schema():
    assert len(VALIDATOR.per_type) >= 20
    assert all(VALIDATOR.is_valid_fast({"events": [e], "responses": []}) for e in REAL_EVENTS)
