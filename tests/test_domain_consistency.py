"""Every response the actions use exists in the domain, and every domain response is used somewhere.

`rasa data validate` cannot see responses that custom actions send, so this closes that gap.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.troubleshooting import conversation, credential_check
from bot.troubleshooting import steps as troubleshooting
from bot.troubleshooting.browsers import SUPPORTED, cache_response
from bot.troubleshooting.diagnosis import DIAGNOSES, OUT_OF_SCOPE

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
RESPONSES = set(DOMAIN["responses"])
# the actions and the conversation logic they call (bot/troubleshooting/, bot/handoff/, bot/outages/)
CODE = [
    *(ROOT / "actions").glob("*.py"),
    *(ROOT / "bot" / "troubleshooting").glob("*.py"),
    *(ROOT / "bot" / "handoff").glob("*.py"),
    *(ROOT / "bot" / "outages").glob("*.py"),
]
SOURCES = "\n".join(p.read_text() for p in CODE) + (ROOT / "data" / "rules.yml").read_text()


def dynamic_responses() -> set:
    names = {f"utter_step_{s}" for s in troubleshooting.SIMPLE_STEP_RESPONSES}
    names |= {f"utter_diagnosis_{d}" for d in DIAGNOSES if d != OUT_OF_SCOPE}
    names |= {f"utter_site_{s}" for s in ("up", "slow", "maintenance", "down", "unknown")}
    names |= set(credential_check.QUESTION_RESPONSES.values())
    names |= set(
        credential_check.advice(
            {
                credential_check.LOGIN_WORKS: False,
                credential_check.SAME_USER_ID: False,
                credential_check.PASSWORD_CHANGED: True,
                credential_check.THIRD_PARTY_ACCESS: False,
                credential_check.NEW_ACCOUNT: True,
            }
        )
    )
    names |= {cache_response(b) for b in SUPPORTED + ("other",)}
    names |= set(conversation.REASK.values())  # the questions asked again in other words
    # forms ask for each required slot with utter_ask_<slot>
    names |= {f"utter_ask_{slot}" for form in DOMAIN.get("forms", {}).values() for slot in form["required_slots"]}
    return names


def test_every_response_named_in_code_exists():
    named = set(re.findall(r'"(utter_[a-z_]+)"', SOURCES)) | dynamic_responses()
    named -= {"utter_", "utter_cred_"}  # prefixes of names made in code
    assert named - RESPONSES == set()


def test_every_domain_response_is_used():
    used = set(re.findall(r"(utter_[a-z_]+)", SOURCES)) | dynamic_responses() | {"utter_default"}
    assert RESPONSES - used == set()


def test_intents_in_rules_are_in_the_domain():
    rules = yaml.safe_load((ROOT / "data" / "rules.yml").read_text())
    intents = set(re.findall(r"intent: (\w+)", yaml.safe_dump(rules)))
    assert intents - set(DOMAIN["intents"]) - {"nlu_fallback"} == set()
