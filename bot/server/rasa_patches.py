"""Every replacement of a Rasa internal, written for Rasa 3.6.21, in one place; each one measured (see
bench/README.md) and each with its equivalence test (tests/test_rasa_patches.py).

Nothing happens on import: ``apply_all()`` puts them in place, called by the Rasa server's launcher
(``python -m bot.server.serve``, see bot/server/serve.py) before Rasa starts. On any Rasa version but
``RASA_VERSION`` it patches nothing and logs a warning: an internal written for 3.6.21 may have changed.

The patches (``PATCHES``), by name:

* ``action_response_validation`` replaces ``RemoteAction._validate_action_result``
  (rasa/core/actions/action.py). Rasa calls ``jsonschema.validate`` on every action-server response,
  which first re-checks the schema itself against the metaschema: about half of the server's time per
  message under load (py-spy). The validator is now built once, and each event is checked against its
  own type's branch of the schema instead of all twenty (another 11 %). What is accepted and rejected is
  unchanged, and so are the errors (``ActionResponseValidator``).
* ``event_class_cache`` replaces ``Event.resolve_by_type`` (rasa/shared/core/events.py). Rasa walks every
  Event subclass to find an event's class by its name, for every stored event, every time a tracker is
  loaded; the answer for a name is now cached (names that are not strings take Rasa's own walk).
* ``button_payloads_skip_nlu`` replaces ``MessageProcessor._parse_message_with_graph``
  (rasa/core/processor.py). For a button payload (``/deny``, ``/inform{"bank": "Chase"}``) Rasa 3.6 runs
  spaCy, the featurizers and DIET, then its RegexMessageHandler (the graph's last NLU component) throws
  all of that away and returns the intent and entities written in the payload. The payload is now
  unpacked directly, with the same Rasa function: the same parse data, without the ~80 ms of DIET per
  button press under load. Text that is not a payload of a known intent still goes through the graph.
* ``rule_states_recent_turns`` replaces ``RulePolicy._predict`` (rasa/core/policies/rule_policy.py).
  To find a rule, Rasa builds the dialogue state of every turn of the conversation (twice per
  prediction: with the user's text, then with the intent) and checks every rule against each of them,
  although a rule can only tell turns apart as far back as it is long: beyond that every rule is
  applicable (``_is_rule_applicable``). Only the states of the last turns, as many as the longest
  rule has, are now built, once for both searches (the conversation's events are still replayed from
  the start, as Rasa does). When no rule matches the intents, Rasa's own code runs over every turn, because its result
  then carries a key made of all the states; when no rule matches the text, that key is never used
  (``_predict`` only reads the text result when it names an action). With DEBUG logging on for the
  rule policy, Rasa's code runs unchanged (it logs every state).
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict

logger = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"  # the version every patch below was written against and tested on


@dataclass(frozen=True)
class Patch:
    """One replaced attribute of a Rasa class: ``build(original)`` returns what goes in its place."""

    name: str
    owner: str  # the class, as "module:Class"
    attribute: str
    build: Callable[[Any], Any]

    def owner_class(self) -> Any:
        module, _, cls = self.owner.partition(":")
        return getattr(importlib.import_module(module), cls)

    def current(self) -> Any:
        return self.owner_class().__dict__[self.attribute]


# ---------------------------------------------------------------- action_response_validation


class ActionResponseValidator:
    """Accepts and rejects exactly what ``jsonschema.validate(result, action_response_format_spec())``
    does, with the same errors, but faster.

    The schema's events are a ``oneOf`` over some twenty event types, each branch pinned by a distinct
    ``"event": {"const": ...}``; jsonschema tries every branch for every event. An event whose
    ``event`` is a known type can only match its own branch, so it is checked against that branch
    alone (plus the common part). Anything else, and any failure, goes through the full schema so that
    the error raised is the one Rasa would raise.
    """

    def __init__(self, schema: dict) -> None:
        from jsonschema.validators import validator_for

        validator_class = validator_for(schema)
        validator_class.check_schema(schema)  # once, instead of on every response
        self.full = validator_class(schema)
        top = dict(schema, properties=dict(schema["properties"]))
        events = dict(top["properties"]["events"])
        items = events.pop("items")
        top["properties"]["events"] = events  # the array itself; its items are checked one by one
        self.top = validator_class(top)
        common = {k: v for k, v in items.items() if k != "oneOf"}
        self.per_type = {}
        for branch in items["oneOf"]:
            name = branch["properties"]["event"]["const"]
            self.per_type[name] = validator_class(dict(common, allOf=[branch]))
        if len(self.per_type) != len(items["oneOf"]):  # two branches for one type: no shortcut is exact
            self.per_type = {}

    def is_valid_fast(self, result) -> bool:
        if not self.per_type or not self.top.is_valid(result):
            return False
        for event in result.get("events") or ():
            if not isinstance(event, dict):
                return False
            validator = self.per_type.get(event.get("event")) if isinstance(event.get("event"), str) else None
            if validator is None or not validator.is_valid(event):
                return False
        return True

    def validate(self, result) -> None:
        if not self.is_valid_fast(result):
            from jsonschema.exceptions import best_match

            error = best_match(self.full.iter_errors(result))  # what jsonschema.validate() raises
            if error is not None:
                raise error


def _validate_with_one_validator(original: Any) -> Any:
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    validator = ActionResponseValidator(RemoteAction.action_response_format_spec())

    def _validate_action_result(self, result):  # the contract of Rasa's method, and its error text
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                ". Failed to validate Action server response from API, make sure your response from the "
                f"Action endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise e

    return _validate_action_result


# ---------------------------------------------------------------- event_class_cache


def _cached_event_class_lookup(original: Any) -> Any:
    resolve = original.__func__ if isinstance(original, staticmethod) else original  # (type_name, default=None)

    @functools.lru_cache(maxsize=256)
    def cached(type_name, default):
        return resolve(type_name, default)  # unknown names still raise (exceptions aren't cached)

    def resolve_by_type(type_name, default=None):
        if isinstance(type_name, str):
            return cached(type_name, default)
        return resolve(type_name, default)  # an unhashable name (bad JSON): Rasa's walk and its error

    return staticmethod(resolve_by_type)


# ---------------------------------------------------------------- button_payloads_skip_nlu


def unpack_payload(text, domain):
    """What Rasa's NLU graph returns for a button payload, or None when ``text`` is not a payload of a
    known intent (then the graph must run). Mirrors ``RegexMessageHandler.process`` (the graph's
    last NLU component) applied to the message ``NLUMessageConverter`` builds."""
    from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
    from rasa.shared.nlu.constants import INTENT, TEXT
    from rasa.shared.nlu.training_data.message import Message

    if not isinstance(text, str) or not text.strip().startswith("/") or domain is None:
        return None
    message = Message({TEXT: text})
    unpacked = YAMLStoryReader.unpack_regex_message(message, domain, entity_extractor_name=RegexMessageHandler.__name__)
    if unpacked is message or unpacked.get(INTENT) is None:
        return None
    return unpacked


def _payloads_without_the_graph(original: Any) -> Any:
    from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT

    def _parse_message_with_graph(self, message, tracker, only_output_properties=True):
        unpacked = unpack_payload(message.text, self.domain)
        if unpacked is None:
            return original(self, message, tracker, only_output_properties)
        parse_data = {TEXT: "", INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, ENTITIES: []}
        parse_data.update(unpacked.as_dict(only_output_properties=only_output_properties))  # as Rasa's method
        return parse_data

    return _parse_message_with_graph


# ---------------------------------------------------------------- rule_states_recent_turns


def recent_prior_trackers(tracker, keep):
    """The last ``keep`` of what ``tracker.generate_all_prior_trackers()`` yields (Rasa 3.6.21's loop,
    which updates one tracker copy in place: the earlier ones are replayed, not yielded)."""
    from rasa.shared.core.events import ActionExecuted

    applied = tracker.applied_events()
    skip = sum(1 for event in applied if isinstance(event, ActionExecuted)) + 1 - keep
    prior = tracker.init_copy()
    seen = 0
    for event in applied:
        if isinstance(event, ActionExecuted):
            if seen >= skip:
                yield prior, event.hide_rule_turn
            seen += 1
        prior.update(event)
    yield prior, False


def longest_rule(policy) -> int:
    """How many states the longest rule of ``policy`` (incl. its loop unhappy-path rules) has."""
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH

    keys = list(policy.lookup.get(RULES, {})) + list(policy.lookup.get(RULES_FOR_LOOP_UNHAPPY_PATH, {}))
    return max((len(policy._rule_key_to_state(key)) for key in keys), default=0)


class _RecentTurns:
    """``policy`` as ``_find_action_from_rules`` sees it, with the states of the last ``keep`` turns
    only; it notes whether any rule matched (the result's key is then a rule's, not the states').
    The states are built once per prediction (``shared``): the search with the text and the one with
    the intent differ only in what the featurizer then keeps of the last user input."""

    def __init__(self, policy, keep: int, shared: dict) -> None:
        self._policy, self._keep, self._shared = policy, keep, shared
        self.rule_matched = False

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def _prediction_states(self, tracker, domain, use_text_for_last_user_input=False, rule_only_data=None):
        import copy

        from rasa.shared.core.trackers import DialogueStateTracker

        recent = copy.copy(tracker)  # the same tracker, whose history starts `keep` turns back
        recent.generate_all_prior_trackers = lambda: recent_prior_trackers(tracker, self._keep)
        shared = self._shared

        def past_states(domain, omit_unset_slots=False, ignore_rule_only_turns=False, rule_only_data=None):
            key = (id(domain), omit_unset_slots, ignore_rule_only_turns)
            built = shared.get(key)
            if built is None or built[0] != rule_only_data:
                states = DialogueStateTracker.past_states(
                    recent, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data
                )
                built = shared[key] = (copy.deepcopy(rule_only_data), states)
            return copy.deepcopy(built[1])  # the featurizer changes the last state

        recent.past_states = past_states
        return self._policy._prediction_states(recent, domain, use_text_for_last_user_input, rule_only_data)

    def _get_possible_keys(self, lookup, states):
        from rasa.core.policies.rule_policy import RULES

        keys = self._policy._get_possible_keys(lookup, states)
        if lookup is self._policy.lookup[RULES] and keys:
            self.rule_matched = True
        return keys


class _RecentRuleSearch:
    """``policy`` as ``RulePolicy._predict`` sees it: each rule search looks at the recent turns."""

    def __init__(self, policy, keep: int, find) -> None:
        self._policy, self._keep, self._find = policy, keep, find
        self._states: dict = {}

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def _find_action_from_rules(self, tracker, domain, use_text_for_last_user_input):
        recent = _RecentTurns(self._policy, self._keep, self._states)
        action, source, returning = self._find(recent, tracker, domain, use_text_for_last_user_input)
        if recent.rule_matched:
            return action, source, returning
        if use_text_for_last_user_input:
            return action, None, returning  # no action from the text: _predict reads nothing else of it
        return self._find(self._policy, tracker, domain, use_text_for_last_user_input)  # the key of every state


def _rules_on_recent_turns(original: Any) -> Any:
    from rasa.core.policies.policy import SupportedData
    from rasa.core.policies.rule_policy import RulePolicy

    find = RulePolicy.__dict__["_find_action_from_rules"]
    rule_logger = logging.getLogger("rasa.core.policies.rule_policy")

    def _predict(self, tracker, domain):
        keep = getattr(self, "_bankfeed_longest_rule", None)
        if keep is None:
            keep = self._bankfeed_longest_rule = longest_rule(self)
        if (
            keep < 1
            or rule_logger.isEnabledFor(logging.DEBUG)
            or self.supported_data() == SupportedData.ML_DATA  # (states would then depend on earlier turns)
            or type(self).__dict__.get("_find_action_from_rules", find) is not find
        ):
            return original(self, tracker, domain)
        return original(_RecentRuleSearch(self, keep, find), tracker, domain)

    return _predict


# ---------------------------------------------------------------- applying them

PATCHES = (
    Patch(
        "action_response_validation",
        "rasa.core.actions.action:RemoteAction",
        "_validate_action_result",
        _validate_with_one_validator,
    ),
    Patch("event_class_cache", "rasa.shared.core.events:Event", "resolve_by_type", _cached_event_class_lookup),
    Patch(
        "button_payloads_skip_nlu",
        "rasa.core.processor:MessageProcessor",
        "_parse_message_with_graph",
        _payloads_without_the_graph,
    ),
    Patch("rule_states_recent_turns", "rasa.core.policies.rule_policy:RulePolicy", "_predict", _rules_on_recent_turns),
)

_originals: Dict[str, Any] = {}  # name -> the class attribute Rasa defined
_replacements: Dict[str, Any] = {}  # name -> ours


def apply_all() -> bool:
    """Puts every patch in place (once); False, with a logged warning, on a Rasa other than RASA_VERSION."""
    import rasa

    if rasa.__version__ != RASA_VERSION:
        logger.warning(
            "The Rasa patches were written for Rasa %s, not %s: none applied (bot/server/rasa_patches.py).",
            RASA_VERSION,
            rasa.__version__,
        )
        return False
    for patch in PATCHES:
        if patch.name in _replacements:
            continue
        original = patch.current()
        replacement = patch.build(original)
        setattr(patch.owner_class(), patch.attribute, replacement)
        _originals[patch.name], _replacements[patch.name] = original, replacement
    return True


def in_place() -> Dict[str, bool]:
    """For each patch, whether the Rasa attribute it replaces is ours right now."""
    return {patch.name: patch.name in _replacements and patch.current() is _replacements[patch.name] for patch in PATCHES}


def original(name: str) -> Any:
    """The attribute as Rasa defines it (a function, or a staticmethod object), whether patched or not."""
    if name in _originals:
        return _originals[name]
    patch = next(p for p in PATCHES if p.name == name)
    return patch.current()


def report() -> None:
    """Logs which patches are in place: called in the Rasa server once it starts (bot.server.channels.policy)."""
    import rasa

    state = in_place()
    if rasa.__version__ != RASA_VERSION:
        logger.warning("Rasa %s: the Rasa patches, written for %s, are not applied.", rasa.__version__, RASA_VERSION)
    elif all(state.values()):
        logger.info("Rasa %s patches in place: %s.", RASA_VERSION, ", ".join(state))
    else:
        missing = [name for name, ok in state.items() if not ok]
        logger.warning(
            "Rasa patches not in place: %s. Start the server with `python -m bot.server.serve run ...` "
            "(bot/server/serve.py), which applies them.",
            ", ".join(missing),
        )
