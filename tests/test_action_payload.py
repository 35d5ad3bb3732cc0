"""What Rasa sends the action server: the domain only to the actions that read it
(``enable_selective_domain`` in endpoints.yml). The equivalence test of that speed-up: every action
of ``actions/`` that is not sent the domain answers exactly what it answers with the domain, and
never reads it (it is given a domain that fails on any access)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor

from actions import actions as sdk_actions
from bot.banks.directory import BankDirectory
from bot.desk import ActionServices
from tests import servers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture(autouse=True)
def local_settings(fake_banks, tmp_path, monkeypatch):
    settings = servers.write_test_settings(tmp_path / "bankfeed.yml", fake_banks.url("/canary/healthy"))
    monkeypatch.setenv("BANKFEED_SETTINGS", str(settings))


def _action_classes():
    return [
        cls
        for _, cls in inspect.getmembers(sdk_actions, inspect.isclass)
        if issubclass(cls, Action) and cls.__module__ == sdk_actions.__name__ and not inspect.isabstract(cls)
    ]


def test_every_shipped_endpoint_sends_the_domain_only_to_the_actions_that_read_it(tmp_path):
    for name in ("endpoints.yml", "endpoints.prod.yml"):
        assert yaml.safe_load((ROOT / name).read_text())["action_endpoint"]["enable_selective_domain"] is True, name
    written = servers.write_endpoints(tmp_path / "e.yml", 5055, tmp_path / "t.db")  # the test and bench stacks
    assert yaml.safe_load(written.read_text())["action_endpoint"]["enable_selective_domain"] is True
    from rasa.core.utils import read_endpoints_from_path

    assert read_endpoints_from_path(ROOT / "endpoints.yml").action.kwargs["enable_selective_domain"] is True


def test_only_the_form_validation_gets_the_domain(domain):
    endpoint = EndpointConfig("http://127.0.0.1:9/webhook", enable_selective_domain=True)
    tracker = DialogueStateTracker.from_events("d", [ActionExecuted("action_listen")], domain.slots)
    sent = {name: "domain" in RemoteAction(name, endpoint)._action_call_format(tracker, domain) for name in domain.user_actions}
    assert {name for name, with_domain in sent.items() if with_domain} == {"validate_bank_form"}
    everything = EndpointConfig("http://127.0.0.1:9/webhook")  # Rasa's default: the domain in every call
    assert all("domain" in RemoteAction(name, everything)._action_call_format(tracker, domain) for name in domain.user_actions)


class NoDomain(dict):
    """A domain that fails the test when an action reads anything from it."""

    def _fail(self, *args, **kwargs):
        raise AssertionError("an action that is not sent the domain read it")

    __getitem__ = get = keys = items = values = __contains__ = __iter__ = __len__ = __bool__ = _fail  # type: ignore


def _user(text, intent, entities=(), confidence=0.97):
    return UserUttered(
        text,
        {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}],
            "entities": [{"entity": e, "value": v, "start": 0, "end": 1} for e, v in entities],
        },
        input_channel="rest",
        message_id=f"m-{intent}",
    )


def _conversations(domain):
    """Trackers at the moments each action runs: a first message, answers at a step, a request for a
    person, a returning customer, the bank question."""
    start = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    first = start + [
        _user("getting error 102 on my chase account", "report_bank_unavailable", [("bank", "Chase"), ("error_code", "102")])
    ]
    progressed = first + [
        ActionExecuted("action_troubleshoot"),
        SlotSet("diagnosis", "bank_unavailable"),
        SlotSet("bank", "Chase"),
        SlotSet("error_code", "102"),
        SlotSet("steps_tried", ["site_check"]),
        SlotSet("current_step", "refresh"),
        ActionExecuted("action_listen"),
    ]
    return {
        "first message": first,
        "no, still failing": progressed + [_user("/deny", "deny", confidence=1.0)],
        "yes": progressed + [_user("/affirm", "affirm", confidence=1.0)],
        "a person please": progressed + [_user("I want a person", "ask_human")],
        "returning": progressed + [ActionExecuted("action_session_start")],
        "which bank?": start
        + [_user("error 102", "report_bank_unavailable", [("error_code", "102")]), SlotSet("needs_bank", True)],
        "off topic": start + [_user("how do I run payroll", "out_of_scope")],
    }


def _executor(services):
    executor = ActionExecutor()
    for cls in _action_classes():
        executor.register_action(cls(services) if issubclass(cls, sdk_actions.UsesServices) else cls())
    return executor


async def test_actions_not_sent_the_domain_answer_the_same(domain, fake_banks, tmp_path):
    registered = ActionExecutor()
    registered.register_package("actions")  # what the action server runs
    names = set(registered.actions)
    assert names == {cls().name() for cls in _action_classes()}
    assert names <= set(domain.user_actions)

    directory = BankDirectory.load(servers.write_test_directory(tmp_path / "banks.yml", fake_banks.base_url))
    with_domain = ActionServices(f"sqlite:///{tmp_path / 'a.db'}", directory=directory)
    without = ActionServices(f"sqlite:///{tmp_path / 'b.db'}", directory=directory)
    full, selective = _executor(with_domain), _executor(without)
    everything = EndpointConfig("http://127.0.0.1:9/webhook")
    only_needed = EndpointConfig("http://127.0.0.1:9/webhook", enable_selective_domain=True)
    compared = 0
    try:
        for case, events in _conversations(domain).items():
            for name in sorted(names):
                tracker = DialogueStateTracker.from_events(f"rest-{case.replace(' ', '-')}", events, domain.slots)
                call_full = RemoteAction(name, everything)._action_call_format(tracker, domain)
                call_selective = RemoteAction(name, only_needed)._action_call_format(tracker, domain)
                assert call_full["domain"] == domain.as_dict()
                if domain.does_custom_action_explicitly_need_domain(name):
                    assert call_selective == call_full
                    continue
                assert {k: v for k, v in call_full.items() if k != "domain"} == call_selective
                call_selective = json.loads(json.dumps(call_selective))  # as it travels
                # (the SDK's executor gives an action `action_call.get("domain", {})`: ours fails on any read)
                call_selective["domain"] = NoDomain()
                answer_full = await full.run(json.loads(json.dumps(call_full)))
                answer_selective = await selective.run(call_selective)
                assert answer_selective == answer_full, (case, name)
                compared += 1
    finally:
        await with_domain.aclose()
        await without.aclose()
    assert compared >= 20
