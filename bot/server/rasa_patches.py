"""Measured speed-ups for Rasa 3.6.21 internals in the Rasa server process (see bench/README.md).

* Action-server responses are validated with a JSON-schema validator built once. Rasa calls
  ``jsonschema.validate`` on every response, which first re-checks the schema itself against the
  metaschema: about half of the server's time per message under load (profiled with py-spy). Each
  event is then checked against its own type's branch of the schema instead of all twenty (another
  11 % of the server's time). What is accepted and rejected is unchanged, and so are the errors.
* Rasa looks up each stored event's class by name again every time a tracker is loaded; the
  lookup is cached.
* A button payload (``/deny``, ``/inform{"bank": "Chase"}``) is not run through the NLU pipeline.
  Rasa 3.6 runs spaCy, the featurizers and DIET on it anyway, then its RegexMessageHandler (the last
  component) throws all of that away and returns the intent and entities written in the payload. The
  payload is now unpacked directly, with the same function: the same parse data, without the ~80 ms of
  DIET per button press under load (9 of the bench's 10 turns are buttons). Text that is not a valid
  payload (an unknown intent, a typo, plain text) still goes through the whole pipeline.

Applied once, when the server's channels are imported (``bot/server/channels/__init__.py``). Guarded to the
Rasa version it was written against: on another version nothing is patched.
"""
from __future__ import annotations

import functools
import logging

import rasa

logger = logging.getLogger(__name__)
SUPPORTED_RASA = "3.6.21"
_applied = False


def apply() -> bool:
    global _applied
    if _applied:
        return True
    if rasa.__version__ != SUPPORTED_RASA:
        logger.warning("Speed-ups written for Rasa %s, not %s: not applied.", SUPPORTED_RASA, rasa.__version__)
        return False
    _cache_action_response_validator()
    _cache_event_class_lookup()
    _unpack_payloads_without_the_nlu_pipeline()
    _applied = True
    return True


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


def _cache_action_response_validator() -> None:
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    validator = ActionResponseValidator(RemoteAction.action_response_format_spec())

    def _validate_action_result(self, result):  # same contract as Rasa's method
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                ". Failed to validate Action server response from API, make sure your response from the "
                f"Action endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise e

    RemoteAction._validate_action_result = _validate_action_result


def _cache_event_class_lookup() -> None:
    from rasa.shared.core.events import Event

    original = Event.resolve_by_type  # a staticmethod: (type_name, default=None) -> event class

    @functools.lru_cache(maxsize=256)
    def resolve_by_type(type_name, default=None):
        return original(type_name, default)  # unknown names still raise (exceptions aren't cached)

    Event.resolve_by_type = staticmethod(resolve_by_type)


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


def _unpack_payloads_without_the_nlu_pipeline() -> None:
    from rasa.core.processor import MessageProcessor
    from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT

    original = MessageProcessor._parse_message_with_graph

    def _parse_message_with_graph(self, message, tracker, only_output_properties=True):
        unpacked = unpack_payload(message.text, self.domain)
        if unpacked is None:
            return original(self, message, tracker, only_output_properties)
        parse_data = {TEXT: "", INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, ENTITIES: []}
        parse_data.update(unpacked.as_dict(only_output_properties=only_output_properties))  # as Rasa's method
        return parse_data

    _parse_message_with_graph.original = original
    MessageProcessor._parse_message_with_graph = _parse_message_with_graph
