"""The Rasa speed-ups keep Rasa's behaviour: same validation errors, same event classes."""
import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

from bot import speedups


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
