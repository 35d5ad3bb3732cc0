"""Rasa NLU component: turns the EntityRuler's matches into the entities our domain uses.

The spaCy pipeline (``bot.nlu.spacy_pipeline``) tags BANK, ERROR_CODE, BROWSER and URL spans.
This component maps them to Rasa entities with canonical values, so slots fill without any
training annotation:

* ``bank``        canonical directory name ("bofa" -> "Bank of America"; a known bank URL too)
* ``error_code``  digits only ("erorr #102" -> "102"), or ``OL-301`` for QuickBooks Desktop codes
* ``browser``     chrome / edge / firefox / safari / opera / brave
* ``bank_url``    any web address the user gives (found by regular expression; used to check an unlisted bank's site)
* ``sensitive_data`` password / card_number / account_number / secret_token, if the user pasted one
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import SPACY_DOCS
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.utils.spacy_utils import SpacyModel, SpacyNLP
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot import redaction
from bot.banks.directory import BankDirectory
from bot.nlu import spacy_pipeline as sp

_DIGITS = re.compile(r"\d{3,4}")
_DESKTOP_CODE = re.compile(r"(?i)ol\s*-?\s*(\d{3})")
# A web address: with a scheme, with www., or a bare host with a common banking top-level domain.
_URL = re.compile(
    r"(?i)(?<![@\w.-])(?:https?://[^\s<>\"']+|www\.[^\s<>\"']+"
    r"|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.(?:com|net|org|bank|ca|co\.uk|uk|us|io)(?:/[^\s<>\"']*)?)(?![\w.-]*@)"
)


def normalise_error_code(span_text: str) -> Optional[str]:
    desktop = _DESKTOP_CODE.search(span_text)
    if desktop:
        return f"OL-{desktop.group(1)}"
    digits = _DIGITS.search(span_text)
    return digits.group() if digits else None


def _entity(name: str, value: str, start: int, end: int) -> Dict[Text, Any]:
    return {"entity": name, "value": value, "start": start, "end": end, "confidence_entity": 1.0}


def entities_from_doc(doc: Any, text: str, directory: BankDirectory) -> List[Dict[Text, Any]]:
    """Rasa entity dicts for one spaCy ``Doc`` (plain function so it can be tested without Rasa)."""
    entities: List[Dict[Text, Any]] = []
    for ent in doc.ents:
        start, end = ent.start_char, ent.end_char
        if ent.label_ == sp.LABEL_BANK:
            entities.append(_entity("bank", ent.ent_id_, start, end))
        elif ent.label_ == sp.LABEL_ERROR_CODE:
            code = normalise_error_code(ent.text)
            if code:
                entities.append(_entity("error_code", code, start, end))
        elif ent.label_ == sp.LABEL_BROWSER:
            entities.append(_entity("browser", ent.ent_id_, start, end))
    for match in _URL.finditer(text):
        spelled = match.group().rstrip(".,;:!?)]'\"")
        url = redaction.without_userinfo(spelled)  # sign-in details never go into a slot (or a probe)
        start = match.start()
        entities.append(_entity("bank_url", url, start, start + len(spelled)))
        bank = directory.from_url(url)
        if bank and not any(e["entity"] == "bank" for e in entities):
            entities.append(_entity("bank", bank.name, start, start + len(url)))
    for finding in redaction.find_sensitive(text):
        entities.append(_entity("sensitive_data", finding.kind, finding.start, finding.end))
    return entities


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False, model_from="SpacyNLP")
class BankFeedEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Maps EntityRuler spans to canonical ``bank``/``error_code``/``browser``/``bank_url`` entities."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [SpacyNLP]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config
        self._directory = BankDirectory.default()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "BankFeedEntityExtractor":
        return cls(config)

    @staticmethod
    def required_packages() -> List[Text]:
        return ["spacy"]

    def process(self, messages: List[Message], model: SpacyModel) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            doc = message.get(SPACY_DOCS[TEXT]) or model.model(text)
            extracted = self.add_extractor_name(entities_from_doc(doc, text, self._directory))
            message.set(ENTITIES, message.get(ENTITIES, []) + extracted, add_to_output=True)
        return messages
