"""The patches of Rasa internals (bot/server/rasa_patches.py) give what Rasa's own code gives: each
patched function is compared with the original on representative inputs (the equivalence tests). And
they are in place only where the launcher puts them: importing our modules patches nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    AgentUttered,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    EntitiesAdded,
    Event,
    FollowupAction,
    ReminderCancelled,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)

from bot.server import rasa_patches
from tests import servers


@pytest.fixture(scope="module", autouse=True)
def patched():
    assert rasa_patches.apply_all() is True


def outcome(call, *args):
    """What a call gave: its value, or the exception's type and text."""
    try:
        return ("returned", call(*args))
    except ValidationError as e:
        return ("raised", ValidationError, e.message, list(e.path), list(e.schema_path))
    except Exception as e:  # noqa: BLE001 - compared, whatever it is
        return ("raised", type(e), str(e))


def test_applied_for_this_rasa():
    assert rasa_patches.RASA_VERSION == "3.6.21"
    assert rasa_patches.apply_all() is True  # again: nothing changes
    assert rasa_patches.in_place() == {p.name: True for p in rasa_patches.PATCHES}
    for patch in rasa_patches.PATCHES:
        assert patch.current() is not rasa_patches.original(patch.name)


# ---------------------------------------------------------------- action_response_validation

SPEC = RemoteAction.action_response_format_spec()
VALIDATOR = rasa_patches.ActionResponseValidator(SPEC)
REAL_EVENTS = [
    e.as_dict()
    for e in (
        SlotSet("bank", "Chase"),
        SlotSet("steps_tried", ["site_check"]),
        BotUttered("hi", {"buttons": []}),
        UserUttered(
            "error 102",
            {"name": "report_bank_unavailable", "confidence": 0.9},
            [{"entity": "bank", "value": "Chase", "start": 0, "end": 5}],
        ),
        ActionExecuted("action_listen"),
        ConversationPaused(),
        ConversationResumed(),
        Restarted(),
        FollowupAction("action_escalate"),
        ActiveLoop("bank_form"),
        ActiveLoop(None),
        AllSlotsReset(),
        SessionStarted(),
        UserUtteranceReverted(),
        AgentUttered("an agent"),
        ActionExecutionRejected("x"),
        EntitiesAdded([{"entity": "bank", "value": "Chase"}]),
        ReminderCancelled("r"),
        ReminderScheduled("intent", __import__("datetime").datetime(2030, 1, 1)),
    )
]
RESPONSES = [
    {"events": [], "responses": []},
    {"events": REAL_EVENTS, "responses": [{"text": "hi", "buttons": [{"title": "Yes", "payload": "/affirm"}]}]},
    {"events": [{"event": "slot", "name": "x", "value": 1}], "responses": []},
    {"responses": [{"response": "utter_greet"}]},
    {},
    {"events": "not a list"},
    {"events": [{"event": "slot"}]},  # a slot event without its name
    {"events": [{"event": "nonsense"}]},
    {"events": [{"name": "x"}]},  # no event type at all
    {"events": [{"event": "bot", "text": 3}]},
    {"events": [{"event": "slot", "name": "x", "value": 1}, "not an event"]},
    {"events": [], "responses": "not a list"},
    [],
    "text",
]


@pytest.mark.parametrize("result", RESPONSES, ids=[json.dumps(r)[:40] for r in RESPONSES])
def test_action_response_validation_gives_what_rasa_gives(result):
    action = RemoteAction("action_troubleshoot", None)
    original = rasa_patches.original("action_response_validation")
    ours = outcome(action._validate_action_result, result)
    assert ours == outcome(original, action, result)
    if ours[0] == "raised":
        assert "Failed to validate Action server response" in ours[2]


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


# ---------------------------------------------------------------- event_class_cache


def _all_event_classes():
    found, todo = [], [Event]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


TYPE_NAMES = sorted({c.type_name for c in _all_event_classes() if isinstance(getattr(c, "type_name", None), str)})
ODD_NAMES = ["topic", "nonsense", "", "SLOT", " slot", None, 3, ("slot",), ["slot"], {"event": "slot"}]


@pytest.mark.parametrize("default", [None, SlotSet], ids=["no-default", "default"])
def test_event_class_lookup_gives_what_rasa_gives(default):
    assert len(TYPE_NAMES) >= 20
    original = rasa_patches.original("event_class_cache")
    for name in TYPE_NAMES + ODD_NAMES:
        for _ in range(2):  # the second time from the cache
            assert outcome(Event.resolve_by_type, name, default) == outcome(original, name, default), name


def test_events_are_rebuilt_the_same():
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("action") is ActionExecuted
    for data in REAL_EVENTS:
        assert Event.from_parameters(data) == Event.from_parameters(dict(data))
        assert Event.from_parameters(data).as_dict() == data
    with pytest.raises(ValueError):
        Event.from_parameters({"event": {"not": "a name"}})  # Rasa's error, not "unhashable type"


# ---------------------------------------------------------------- button_payloads_skip_nlu

PAYLOADS_AND_TEXTS = [
    "/deny",
    "/affirm",
    " /affirm ",
    "/fixed_it",
    '/inform{"bank": "Chase"}',
    '/inform{"bank": "Nonexistent Bank"}',
    "/deny@0.4",
    "/deny{not json",
    "/no_such_intent",
    "/",
    "/ deny",
    "/DENY",
    '/inform{"unknown_entity": 1}',
    "deny",
    "error 102 /deny",
    "/deny please",
    "/talk_to_human",
    '/share_sensitive_data{"sensitive_data": "x"}',
]


@pytest.fixture(scope="module")
def processor(trained_model):
    from rasa.core.agent import Agent

    return Agent.load(str(trained_model)).processor


@pytest.mark.parametrize("text", PAYLOADS_AND_TEXTS)
@pytest.mark.parametrize("only_output_properties", [True, False])
def test_payloads_skip_the_nlu_pipeline_with_the_same_result(processor, text, only_output_properties):
    """Button payloads are unpacked without running spaCy/DIET: the parse data must be exactly what the
    whole NLU graph returns for them (and anything else still goes through the graph)."""
    from rasa.core.channels.channel import UserMessage
    from rasa.shared.core.trackers import DialogueStateTracker

    message = UserMessage(text, sender_id="parse-check")
    tracker = DialogueStateTracker.from_events("parse-check", [])
    original = rasa_patches.original("button_payloads_skip_nlu")
    graph = original(processor, message, tracker, only_output_properties)
    fast = processor._parse_message_with_graph(message, tracker, only_output_properties)

    # (the graph's full output holds spaCy docs and tokens, equal only by identity: compare their text)
    def text_of(obj):
        return [type(obj).__name__, getattr(obj, "text", None)]

    assert json.dumps(fast, default=text_of, sort_keys=True) == json.dumps(graph, default=text_of, sort_keys=True)
    skipped = rasa_patches.unpack_payload(text, processor.domain) is not None
    if text in ("/deny", "/affirm", " /affirm ", '/inform{"bank": "Chase"}', "/deny@0.4"):
        assert skipped
    if text in ("deny", "error 102 /deny", "/no_such_intent", "/", "/DENY", "/talk_to_human"):
        assert not skipped  # not a payload of a known intent: the whole pipeline runs


# ---------------------------------------------------------------- rule_states_recent_turns

FIXTURES = servers.ROOT / "tests" / "fixtures"


def _rule_policy(processor):
    from rasa.core.policies.rule_policy import RulePolicy

    nodes = processor.graph_runner._instantiated_nodes.values()
    (policy,) = [n._component for n in nodes if isinstance(getattr(n, "_component", None), RulePolicy)]
    return policy


def _training_conversations(domain):
    """The stories, rules and test stories as event lists (the rules' snippets included)."""
    from rasa.core.training import load_data

    paths = [servers.ROOT / "data" / "stories.yml", servers.ROOT / "tests" / "stories" / "test_stories.yml"]
    paths += sorted((servers.ROOT / "data").glob("rules*.yml"))
    return [list(t.events) for path in paths for t in load_data(str(path), domain, augmentation_factor=0)]


def _long_conversations(domain):
    """A whole scripted conversation as the server stored it (10 messages, bank check, credential
    questions, fixes), the same with a restart or a reverted message in it, and stories one after
    another: long histories, where only the recent turns are looked at."""
    from rasa.shared.core.events import Event, Restarted, UserUtteranceReverted

    stored = [Event.from_parameters(e) for e in json.loads((FIXTURES / "conversation_error_102.json").read_text())]
    middle = len(stored) // 2
    stories = _training_conversations(domain)
    chained = [e for events in stories[:6] for e in events]
    return [
        stored,
        stored[:middle] + [Restarted()] + stored[middle:],
        stored[:middle] + [UserUtteranceReverted()] + stored[middle:],
        stored + [e for events in stories[:3] for e in events],
        chained,
    ]


def _prediction_points(events):
    """Every prefix after which Rasa predicts the next action: before each action, and at the end."""
    from rasa.shared.core.events import ActionExecuted

    return [events[:i] for i, e in enumerate(events) if isinstance(e, ActionExecuted)] + [events]


def _predictions(predict, policy, trackers, domain):
    out = []
    for tracker in trackers:
        prediction, source = predict(policy, tracker, domain)
        out.append((vars(prediction), source))
    return out


def test_rules_on_recent_turns_predict_what_rasa_predicts(processor, monkeypatch):
    """The RulePolicy's prediction (probabilities, events, flags, the rule it came from) with only the
    recent turns' states built is the one Rasa's own code gives, at every prediction point of the
    stories, rules, test stories and long stored conversations."""
    from rasa.shared.core.trackers import DialogueStateTracker

    domain, policy = processor.domain, _rule_policy(processor)
    keep = rasa_patches.longest_rule(policy)
    assert 1 <= keep < 5  # the rules are short: a long conversation has many more states
    shortened = []
    recent = rasa_patches.recent_prior_trackers
    monkeypatch.setattr(rasa_patches, "recent_prior_trackers", lambda t, k: shortened.append(len(t.events)) or recent(t, k))
    conversations = _training_conversations(domain) + _long_conversations(domain)
    trackers = [
        DialogueStateTracker.from_events("rules", prefix, domain.slots)
        for events in conversations
        for prefix in _prediction_points(events)
    ]
    original = rasa_patches.original("rule_states_recent_turns")
    patched = type(policy)._predict
    assert patched is not original
    assert _predictions(patched, policy, trackers, domain) == _predictions(original, policy, trackers, domain)
    assert len(shortened) > 0.9 * len(trackers) and max(shortened) > 100  # the short way was taken, on long histories too


def test_rules_on_recent_turns_log_every_state_at_debug(processor, monkeypatch, caplog):
    """With DEBUG logging on for the rule policy, Rasa's code runs as it is (it logs every state)."""
    import logging

    from rasa.shared.core.trackers import DialogueStateTracker

    calls = []
    monkeypatch.setattr(rasa_patches, "recent_prior_trackers", lambda t, k: calls.append(1) or iter(()))
    domain, policy = processor.domain, _rule_policy(processor)
    tracker = DialogueStateTracker.from_events("debug", _long_conversations(domain)[0], domain.slots)
    with caplog.at_level(logging.DEBUG, logger="rasa.core.policies.rule_policy"):
        prediction, source = type(policy)._predict(policy, tracker, domain)
    assert calls == []
    original = rasa_patches.original("rule_states_recent_turns")
    assert (vars(prediction), source) == _predictions(original, policy, [tracker], domain)[0]


# ---------------------------------------------------------------- applied by the launcher, and only there


def _run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = servers.base_env()
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _modules_rasa_loads_by_name():
    """Our modules Rasa imports by the names in credentials.yml, config.yml and endpoints.yml."""
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    config = yaml.safe_load((servers.ROOT / "config.yml").read_text())
    endpoints = yaml.safe_load((servers.ROOT / "endpoints.yml").read_text())
    names = [key for key in credentials if "." in key]
    names += [c["name"] for c in config.get("pipeline", []) + config.get("policies", []) if "." in c["name"]]
    names += [endpoints[k]["type"] for k in ("tracker_store", "lock_store") if k in endpoints and "." in endpoints[k]["type"]]
    modules = sorted({name.rsplit(".", 1)[0] for name in names})
    assert "bot.server.channels.rest" in modules and "bot.server.stores.tracker_store" in modules
    return modules


def test_importing_our_server_modules_patches_nothing_and_masks_nothing():
    modules = _modules_rasa_loads_by_name() + [
        "bot.server.channels",
        "actions",
        "actions.actions",
        "bot.server.serve",
        "bot.server.action_server",
    ]
    result = _run_python(f"""
        import importlib, json, logging, warnings
        factory, show = logging.getLogRecordFactory(), warnings.showwarning
        for name in {modules!r}:
            importlib.import_module(name)
        from rasa.core.actions.action import RemoteAction
        from rasa.core.processor import MessageProcessor
        from rasa.shared.core.events import Event
        from bot import log_masking
        from bot.server import quiet_start, rasa_patches
        ours = {{pattern for _, _, pattern in quiet_start.THIRD_PARTY_WARNINGS}}
        print(json.dumps({{
            "in_place": rasa_patches.in_place(),
            "defined_in": [RemoteAction._validate_action_result.__module__, Event.resolve_by_type.__module__,
                           MessageProcessor._parse_message_with_graph.__module__],
            "masked": log_masking.installed() or logging.getLogRecordFactory() is not factory
                      or warnings.showwarning is not show,
            "quiet_filters": [f[1].pattern for f in warnings.filters if f[1] is not None and f[1].pattern in ours],
        }}))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {
        "in_place": {p.name: False for p in rasa_patches.PATCHES},
        "defined_in": ["rasa.core.actions.action", "rasa.shared.core.events", "rasa.core.processor"],
        "masked": False,
        "quiet_filters": [],
    }


def test_nothing_is_patched_on_another_rasa():
    result = _run_python("""
        import json, rasa
        rasa.__version__ = "3.7.0"
        from bot.server import rasa_patches
        print(json.dumps([rasa_patches.apply_all(), rasa_patches.in_place()]))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    applied, state = json.loads(result.stdout.strip().splitlines()[-1])
    assert applied is False and not any(state.values())
    assert "The Rasa patches were written for Rasa 3.6.21, not 3.7.0: none applied" in result.stderr


def test_the_server_started_by_the_launcher_has_them_in_place(rasa_stack):
    """tests/servers.py starts the Rasa server as every script does (``python -m bot.server.serve run``); in that
    process the patched functions are ours once it serves (logged at start by bot.server.channels.policy)."""
    rasa_stack.send("patches-check", "/greet")  # a button payload, parsed by the patched processor
    log = (rasa_stack.dir / "rasa.log").read_text(errors="replace")
    names = ", ".join(p.name for p in rasa_patches.PATCHES)
    assert f"Rasa 3.6.21 patches in place: {names}." in log
    assert "Rasa patches not in place" not in log


def test_every_way_of_starting_the_servers_goes_through_the_launchers():
    """scripts/, the images and the orchestrators start Rasa with ``python -m bot.server.serve`` and the action
    server with ``python -m bot.server.action_server``, never ``rasa run`` (which would skip the patches and the
    log masking)."""
    deploy = servers.ROOT / "deploy"
    serve, action_server = ["python", "-m", "bot.server.serve"], ["python", "-m", "bot.server.action_server"]
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    assert compose["x-rasa"]["entrypoint"] == serve and compose["x-rasa"]["command"][0] == "run"
    assert "entrypoint" not in compose["x-actions"] and "command" not in compose["x-actions"]  # the image's
    containers = {}
    for name in ("rasa.yaml", "actions.yaml"):
        for doc in yaml.safe_load_all((deploy / "k8s" / name).read_text()):
            if doc and doc["kind"] == "Deployment":
                containers.update({c["name"]: c for c in doc["spec"]["template"]["spec"]["containers"]})
    assert containers["rasa"]["command"] == serve and containers["rasa"]["args"][0] == "run"
    assert "command" not in containers["actions"]  # the image's entrypoint
    entrypoints = {
        name: json.loads(re.search(r"^ENTRYPOINT (.+)$", (deploy / name).read_text(), re.M).group(1))
        for name in ("Dockerfile.rasa", "Dockerfile.actions")
    }
    assert entrypoints == {"Dockerfile.rasa": serve, "Dockerfile.actions": action_server}
    for script in ("run.sh", "prod-up.sh"):
        text = (servers.ROOT / "scripts" / script).read_text()
        assert "-m bot.server.serve run" in text and "-m bot.server.action_server" in text, script
        assert not re.search(r"\brasa(_BIN\"?|\")? run\b", text), script
    test_servers = " ".join((servers.ROOT / "tests" / "servers.py").read_text().split())  # as formatted, any wrapping
    assert '"-m", "bot.server.serve", "run"' in test_servers and '"-m", "bot.server.action_server"' in test_servers
