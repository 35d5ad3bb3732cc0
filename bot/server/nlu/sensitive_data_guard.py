"""Rasa NLU component: a message carrying a secret gets intent ``share_sensitive``.

A secret is anything ``bot.redaction`` finds (passwords, card/account/routing numbers, one-time codes,
tokens, government ids); the entity extractor tags it as ``sensitive_data`` with the kind as its value.

It runs last in the pipeline, after the entity extractor has tagged ``sensitive_data``. The original
ranking is kept in ``intent_ranking`` so the dialogue can carry on with what the user meant, and a rule
makes the bot say such details must never be shared (the text itself is masked before it is stored).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

SHARE_SENSITIVE_INTENT = "share_sensitive"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class SensitiveDataGuard(GraphComponent):
    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SensitiveDataGuard":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if any(e.get("entity") == "sensitive_data" for e in message.get(ENTITIES, [])):
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: SHARE_SENSITIVE_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0},
                    add_to_output=True,
                )
        return messages
