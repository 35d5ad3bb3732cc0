"""Measured speed-ups for Rasa 3.6.21 internals in the Rasa server process (see bench/README.md).

* Action-server responses are validated with a JSON-schema validator built once. Rasa calls
  ``jsonschema.validate`` on every response, which first re-checks the schema itself against the
  metaschema: about half of the server's time per message under load (profiled with py-spy). The
  validation itself is unchanged: the same schema, the same errors.
* Rasa looks up each stored event's class by name again every time a tracker is loaded; the
  lookup is cached.

Applied once, when the server's channels are imported (``bot/channels/__init__.py``). Guarded to the
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
    _applied = True
    return True


def _cache_action_response_validator() -> None:
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)  # once, instead of on every response
    validator = validator_class(schema)

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
