"""A battery of secrets customers paste, sent through every channel of one real stack, then a scan of
everything the stack stored, streamed, logged or served: none of the secrets may appear anywhere.

One Rasa server (REST, socketio widget, Slack against tests/fake_slack.py, Teams against
tests/fake_botframework.py, the agent console) with Rasa's SQL event broker switched on, and its own
action server, so the scan sees exactly this battery's tracker store, hand-off store, broker events and
both servers' logs. A hand-off over REST runs too, so the transcript and the console API are covered.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List

import httpx
import pytest
import yaml

from tests import servers
from tests.conftest import ActionServer, ConsoleClient, RasaStack
from tests.fake_botframework import FakeConnector, FakeFileHost, FakeOpenId, FakeTokenService
from tests.fake_slack import FakeSlack

# (what the customer writes, the secrets in it): each a different format of one of the families
BATTERY = [
    ("my card is 4111111111111111.", ["4111111111111111"]),
    ("card 4012 8888 8888 1881 keeps failing in qbo", ["4012 8888 8888 1881"]),
    ("visa 4000-0566-5566-5556, error 102", ["4000-0566-5566-5556"]),
    ("it's 5555.5555.5555.4444 on the statement", ["5555.5555.5555.4444"]),
    ("mastercard 5105/1051/0510/5100 declined", ["5105/1051/0510/5100"]),
    ("amex 3782 822463 10005 is the one", ["3782 822463 10005"]),
    ("card number 6011 0009 9013 9424 exp 12/27", ["6011 0009 9013 9424"]),
    ("the cvv is 7391 if you need it", ["7391"]),
    ("password hunter2", ["hunter2"]),
    ("my password is Summer2024! and error 103", ["Summer2024!"]),
    ("pw: Tr0ub4dor&3", ["Tr0ub4dor&3"]),
    ("PIN 4719", ["4719"]),
    ("my pin code is 8264 for the debit card", ["8264"]),
    ("the password for chase online banking is BlueSky#77", ["BlueSky#77"]),
    ("my passphrase is purple monkey dishwasher lamp", ["purple monkey dishwasher lamp"]),
    ("memorable word: marmalade42", ["marmalade42"]),
    ("security answer is fluffy the hamster", ["fluffy the hamster"]),
    ("I log in at https://jsmith:S3cretPass@secure.bank.com/login", ["S3cretPass"]),
    ("files come from ftp://admin:letmein99@files.bank.example", ["letmein99"]),
    ("Authorization: Bearer abcdEFGH1234567890wxyzQ", ["abcdEFGH1234567890wxyzQ"]),
    ("our slack token xoxb-2847561930-AbCdEfGhIjKlMnOp", ["xoxb-2847561930-AbCdEfGhIjKlMnOp"]),
    ("xoxp-1234567890-0987654321-abcdefabcdef", ["xoxp-1234567890-0987654321-abcdefabcdef"]),
    ("stripe key sk_live_51HxYzQwErTyUiOpAsDf", ["sk_live_51HxYzQwErTyUiOpAsDf"]),
    ("github token ghp_Zx81Kq0PpLm2Nn3Bb4Vv5Cc6Xx7Zz8Aa9Ss", ["ghp_Zx81Kq0PpLm2Nn3Bb4Vv5Cc6Xx7Zz8Aa9Ss"]),
    ("AKIAQ3EGRT7PLMW2XYZ5 is the aws key", ["AKIAQ3EGRT7PLMW2XYZ5"]),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlMTIzNDU2Nzg", ["eyJzdWIiOiJib2IifQ"]),
    ("api key: 9f8e7d6c5b4a39281706", ["9f8e7d6c5b4a39281706"]),
    ("the verification code they texted me is 482913", ["482913"]),
    ("error 185, the code for error 185 is 550217", ["550217"]),
    ("OTP: 731 904", ["731 904"]),
    ("660318 is my code", ["660318"]),
    ("2FA code 90817263", ["90817263"]),
    ("SSN 219-45-6781", ["219-45-6781"]),
    ("my social security number is 078051120", ["078051120"]),
    ("ITIN 912-71-4455", ["912-71-4455"]),
    ("our EIN is 12-3456789", ["12-3456789"]),
    ("SIN 046 454 286", ["046 454 286"]),
    ("NI number AB 12 34 56 C", ["AB 12 34 56 C"]),
    ("routing 021000021 account 4830193725", ["021000021", "4830193725"]),
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", ["GB82 WEST 1234 5698 7654 32"]),
    ("DE89370400440532013000 is our iban", ["DE89370400440532013000"]),
    ("sort code 20-00-00 account 31926819", ["20-00-00", "31926819"]),
    ("account 02032024 at chase", ["02032024"]),
    ("acct no. 12/03/2024", ["12/03/2024"]),
    ("my chase checking 7723019846 shows 102", ["7723019846"]),
]
SECRETS = sorted({s for _, found in BATTERY for s in found})
MASK_WORDS = ("removed", "masked")

SLACK_TOKEN = "xoxb-fake-" + secrets.token_hex(8)
SLACK_SECRET = secrets.token_hex(16)
APP_ID = "7c1b5d8e-0000-4a6b-9c1d-bank5feed0002"
APP_PASSWORD = "test-secret-" + secrets.token_urlsafe(12)
AGENT_PASSWORD = "battery agent pass phrase"


def test_the_battery_is_big_and_every_entry_is_detected():
    from bot.redaction import redact

    assert len(BATTERY) >= 40
    for text, found in BATTERY:
        masked = redact(text)
        assert all(s not in masked for s in found), (text, masked)


# ---------------------------------------------------------------------------------------------- the stack
class BatteryStack(RasaStack):
    def __init__(self, env, directory: Path, action_port: int, credentials: Path):
        super().__init__(env, directory, action_port)
        self.credentials = credentials
        endpoints = yaml.safe_load(self.endpoints.read_text())
        endpoints["event_broker"] = {"type": "sql", "dialect": "sqlite", "db": str(directory / "broker.db")}
        self.endpoints.write_text(yaml.safe_dump(endpoints))

    def start(self) -> "BatteryStack":
        self.proc = servers.start_rasa_server(
            self.port, self.endpoints, self.token, self.dir / "rasa.log", self.env, credentials=self.credentials
        )
        return self


@pytest.fixture(scope="module")
def fakes():
    slack = FakeSlack(SLACK_TOKEN).start()
    openid = FakeOpenId().start()
    tokens = FakeTokenService(APP_ID, APP_PASSWORD).start()
    connector = FakeConnector(tokens).start()
    files = FakeFileHost().start()
    yield SimpleNamespace(slack=slack, openid=openid, tokens=tokens, connector=connector)
    for server in (files, connector, tokens, openid, slack):
        server.stop()


@pytest.fixture(scope="module")
def battery_stack(fake_banks, fakes, tmp_path_factory, trained_model):
    base = tmp_path_factory.mktemp("secrets")
    env = servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(servers.write_test_directory(base / "banks.yml", fake_banks.base_url)),
            "BANKFEED_SETTINGS": str(servers.write_test_settings(base / "bankfeed.yml", fake_banks.url("/canary/healthy"))),
            "HANDOFF_DB_URL": f"sqlite:///{base / 'handoff.db'}",
            "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
        }
    )
    for name in ("MICROSOFT_APP_ID", "MICROSOFT_APP_TENANT_ID", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL"):
        env.pop(name, None)
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    credentials["bot.server.channels.slack.SlackInput"] = {
        "slack_token": SLACK_TOKEN,
        "slack_signing_secret": SLACK_SECRET,
        "slack_api_url": fakes.slack.api_url,
        "slack_channel": "CSUPPORT01",
    }
    credentials["bot.server.channels.teams.BotFrameworkInput"] = {
        "app_id": APP_ID,
        "openid_metadata_url": fakes.openid.metadata_url,
        "token_url": fakes.tokens.token_url(),
        "http_timeout": 2,
        "jwks_retry_seconds": 0,
        "jwks_refresh_min_seconds": 0,
        "token_retry_seconds": 1,
        "service_url_hosts": ["127.0.0.1"],  # the local fake connector stands in for the Bot Framework hosts
    }
    credentials_path = base / "credentials.yml"
    credentials_path.write_text(yaml.safe_dump(credentials, sort_keys=False))
    actions = ActionServer(env, base).start()
    stack = BatteryStack(env, base, actions.port, credentials_path).start()
    stack.actions = actions
    yield stack
    stack.stop()
    actions.stop()


# ---------------------------------------------------------------------------------------------- the channels
def bot_texts(replies: Iterable[Dict[str, Any]]) -> str:
    return " ".join(str(r.get("text") or "") for r in replies)


def assert_no_secret(where: str, text: str) -> None:
    leaked = leaks(text)
    assert not leaked, f"{where} holds {leaked}"


@pytest.fixture(scope="module")
def sent(battery_stack, fakes):
    """Every battery message through REST, socketio, Slack and Teams, plus a hand-off over REST."""
    out: Dict[str, Any] = {"rest": [], "socketio": [], "slack": [], "teams": [], "warned": {}}
    stack = battery_stack

    # --- REST: a few conversations, each message warned about, none quoted back
    for i, (text, _) in enumerate(BATTERY):
        sender = out.setdefault("senders", {}).setdefault(i // 8, f"battery-rest-{i // 8}-{uuid.uuid4().hex[:6]}")
        replies = stack.send(sender, text)
        out["rest"].append(replies)
        out["warned"][text] = any(w in bot_texts(replies).lower() for w in MASK_WORDS)

    # --- the bank form: a secret typed where the bank's name was asked for is never echoed
    form_sender = f"battery-form-{uuid.uuid4().hex[:6]}"
    stack.send(form_sender, "error 102, the bank feed stopped")
    out["form"] = stack.send(form_sender, "my online banking password is Hunter2Secret!")
    out["form_after"] = stack.send(form_sender, "chase")

    # --- socketio (the widget)
    import socketio

    client = socketio.Client(reconnection=False)
    answers: List[Any] = []
    confirmed: List[Any] = []
    client.on("bot_uttered", lambda data: answers.append(data))
    client.on("session_confirm", lambda data: confirmed.append(data))
    client.connect(stack.url, transports=["polling"], wait_timeout=10)
    try:
        client.emit("session_request", {"session_id": uuid.uuid4().hex})
        deadline = time.monotonic() + 10
        while not confirmed and time.monotonic() < deadline:
            client.sleep(0.1)
        assert confirmed, "no session_confirm"
        session = confirmed[0] if isinstance(confirmed[0], str) else confirmed[0]["session_id"]
        for text, _ in BATTERY:
            before = len(answers)
            client.emit("user_uttered", {"session_id": session, "message": text})
            deadline = time.monotonic() + 20
            while len(answers) == before and time.monotonic() < deadline:
                client.sleep(0.1)
            client.sleep(0.3)
    finally:
        client.disconnect()
    out["socketio"] = answers
    out["widget_session"] = session

    # --- Slack: DMs, signed like Slack signs them
    from tests.test_slack_channel import message_event, sign

    user, dm = "U" + uuid.uuid4().hex[:8].upper(), "D" + uuid.uuid4().hex[:8].upper()
    for text, _ in BATTERY:
        body = json.dumps(message_event(user, dm, text)).encode()
        r = httpx.post(
            f"{stack.url}/webhooks/slack/webhook",
            content=body,
            timeout=30,
            headers={"Content-Type": "application/json", **sign(body, secret=SLACK_SECRET)},
        )
        assert r.status_code == 200, r.text
        time.sleep(0.5)  # Slack delivers one event at a time; the bot answers each in the background
    deadline = time.monotonic() + 60
    while len(fakes.slack.posts_to(dm)) < len(BATTERY) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    out["slack"] = [p.text for p in fakes.slack.posts_to(dm)]

    # --- Teams: signed activities
    service_url = fakes.connector.base_url + "/amer/"
    conversation = f"a:conv-{uuid.uuid4().hex[:16]}"
    team_user = f"29:user-{uuid.uuid4().hex[:12]}"
    for text, _ in BATTERY:
        activity = {
            "type": "message",
            "id": uuid.uuid4().hex[:13],
            "timestamp": "2024-05-01T09:00:00.000Z",
            "channelId": "msteams",
            "serviceUrl": service_url,
            "from": {"id": team_user, "name": "Sam Owner"},
            "conversation": {"id": conversation, "conversationType": "personal", "tenantId": "tenant-0001"},
            "recipient": {"id": f"28:{APP_ID}", "name": "Bank Feed Helper"},
            "channelData": {"tenant": {"id": "tenant-0001"}},
            "locale": "en-US",
            "textFormat": "plain",
            "text": text,
        }
        token = fakes.openid.sign(APP_ID, service_url)
        r = httpx.post(
            f"{stack.url}/webhooks/botframework/webhook", json=activity, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
    out["teams"] = fakes.connector.activities(conversation)

    # --- a hand-off over REST: secrets before and while a specialist is asked for
    handoff_sender = f"battery-handoff-{uuid.uuid4().hex[:6]}"
    steps = [
        stack.send(handoff_sender, text)
        for text in ("error 103 on chase, my password is Summer2024! and error 103", "i want to talk to a person", "/ask_human")
    ]
    for text, _ in BATTERY[:12]:
        stack.send(handoff_sender, text)  # while waiting: these go to the specialist's console
    out["handoff_sender"] = handoff_sender

    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore

    AgentStore(Database(stack.env["HANDOFF_DB_URL"])).create_agent("battery", AGENT_PASSWORD, "Battery Agent")
    console = ConsoleClient(stack.url, "battery", AGENT_PASSWORD)
    tickets = console.get("/tickets", params={"status": "waiting,assigned,returned_to_bot,closed"}).json()["tickets"]
    mine = [t for t in tickets if t["conversation_id"] == stack.conversation_id(handoff_sender)]
    assert mine, (
        f"no ticket for {handoff_sender}: {[t['conversation_id'] for t in tickets]}; the bot said {[bot_texts(r) for r in steps]}"
    )
    ticket = mine[0]
    out["console"] = [json.dumps(tickets), console.get(f"/tickets/{ticket['id']}").text]
    out["ticket"] = console.get(f"/tickets/{ticket['id']}").json()
    return out


# ---------------------------------------------------------------------------------------------- the scan
def _bounded(secret: str) -> re.Pattern:
    return re.compile(r"(?<![0-9A-Za-z])" + re.escape(secret) + r"(?![0-9A-Za-z])")


_PATTERNS = {s: _bounded(s) for s in SECRETS}
_DIGIT_FORMS = {s: _bounded(re.sub(r"\D", "", s)) for s in SECRETS if sum(c.isdigit() for c in s) >= 9}


def unseparated(text: str) -> str:
    return re.sub(r"(?<=\d)[\s./-]+(?=\d)", "", text)


def leaks(text: str) -> List[str]:
    """The battery's secrets found in ``text``: as typed, or as their digits without separators."""
    flat = unseparated(text)
    return sorted(
        {s for s, rx in _PATTERNS.items() if rx.search(text)} | {s for s, rx in _DIGIT_FORMS.items() if rx.search(flat)}
    )


def strings_in(value: Any) -> Iterable[str]:
    """Every string in a JSON-like value (numbers such as timestamps are left out: they aren't text)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value[:1] in "{[" else None
        except ValueError:
            parsed = None
        if parsed is not None:
            yield from strings_in(parsed)
        else:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings_in(v)


def database_text(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        parts = []
        for (table,) in conn.execute("select name from sqlite_master where type='table'"):
            for row in conn.execute(f'select * from "{table}"'):
                parts.extend(s for cell in row for s in strings_in(cell))
    return "\n".join(parts)


def test_every_channel_warned_and_never_quoted_a_secret(sent):
    unwarned = [text for text, warned in sent["warned"].items() if not warned]
    assert not unwarned, f"no 'removed' notice for: {unwarned}"
    for channel in ("rest", "socketio", "teams"):
        assert sent[channel], f"nothing came back over {channel}"
    assert_no_secret("the REST replies", json.dumps(sent["rest"]))
    assert_no_secret("the widget's messages", json.dumps(sent["socketio"]))
    assert_no_secret("the Slack posts", json.dumps(sent["slack"]))
    assert_no_secret("the Teams replies", json.dumps(sent["teams"]))
    assert len(sent["slack"]) >= len(BATTERY) and any(w in " ".join(sent["slack"]).lower() for w in MASK_WORDS)
    assert any(w in json.dumps(sent["teams"]).lower() for w in MASK_WORDS)


def test_the_bank_form_says_what_it_removed_instead_of_quoting_it(sent):
    said = bot_texts(sent["form"])
    assert "Hunter2Secret" not in said and "in my bank list" not in said
    assert any(w in said.lower() for w in MASK_WORDS), said
    assert "bank" in said.lower()  # and it asks for the bank again
    assert "Chase" in bot_texts(sent["form_after"])  # the conversation carries on


def test_the_stores_the_broker_the_logs_and_the_apis_hold_none_of_them(sent, battery_stack):
    stack = battery_stack
    tracker_db = database_text(stack.dir / "tracker.db")
    broker = database_text(stack.dir / "broker.db")
    handoff = database_text(stack.dir / "handoff.db")
    logs = "\n".join(p.read_text(errors="replace") for p in stack.dir.glob("*.log"))
    history = httpx.get(f"{stack.url}/chat/history", params={"session_id": sent["widget_session"]}, timeout=30).text
    tracker_api = json.dumps(stack.tracker(sent["handoff_sender"]))
    places = {
        "the tracker store": tracker_db,
        "the broker's events": broker,
        "the hand-off store": handoff,
        "the server logs": logs,
        "the console API": "\n".join(sent["console"]),
        "the widget history": history,
        "the tracker API": tracker_api,
    }
    for where, text in places.items():
        assert_no_secret(where, text)
    # the places were really filled: masked messages in each store, the broker streamed events, a transcript
    for where in ("the tracker store", "the broker's events", "the hand-off store", "the widget history", "the console API"):
        assert "[password removed]" in places[where] or "[card number removed]" in places[where], where
    assert broker.count("user") >= len(BATTERY)
    assert len(json.loads(history)["messages"]) >= 2 * len(BATTERY)
    ticket = sent["ticket"]
    assert ticket["transcript"] and len([m for m in ticket["messages"] if m["sender"] == "user"]) >= 12
    assert "rasa.log" in {p.name for p in stack.dir.glob("*.log")} and any(
        p.name.startswith("actions") for p in stack.dir.glob("*.log")
    )
