"""A channel's identity comes only from that channel; a conversation belongs to whoever started it.

The real Rasa and action servers, with Slack and Teams switched on against local fakes of their APIs
(tests/fake_slack.py, tests/fake_botframework.py), and a real local HTTP server playing the attacker.
REST and socket clients send bodies forged to look like Teams or Slack (``input_channel``, Teams'
``botframework.serviceUrl`` pointing at the attacker with ``?x=`` to swallow the path, Slack's
``out_channel`` / ``thread_id``); then the conversation escalates, a specialist claims it and answers
through the console API, and a back-online notice is sent. The attacker must receive nothing (not even
a connector token is fetched), and nothing may be posted to the fake Slack or Teams for them. Reading or
writing a conversation with an id the server did not issue to that channel is refused.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any, Callable, Dict, List

import httpx
import pytest
import yaml

from tests import servers
from tests.conftest import ActionServer, ConsoleClient, RasaStack
from tests.fake_botframework import FakeConnector, FakeOpenId, FakeTokenService, _FakeServer
from tests.fake_slack import FakeSlack

APP_ID = "7c1b5d8e-0000-4a6b-9c1d-identity0001"
APP_PASSWORD = "test-secret-" + secrets.token_urlsafe(12)
SLACK_TOKEN = "xoxb-fake-" + secrets.token_hex(8)
SLACK_SECRET = secrets.token_hex(16)
VICTIM_CHANNEL, VICTIM_THREAD = "CVICTIM01", "1700000000.000100"
VICTIM_TEAMS_CONVERSATION = "a:victim-conversation"
RADAR = {
    "min_reports": 3,
    "min_probe_failures": 3,
    "window_minutes": 30,
    "quiet_minutes": 10,
    "recheck_minutes": 0.01,
    "notice_expiry_hours": 24,
    "notifier_interval_seconds": 0.5,
}
AGENT_PASSWORD = "correct horse battery"


class Attacker(_FakeServer):
    """Any HTTP server on the internet: records every request that reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: List[Dict[str, Any]] = []

    def handle(self, h: Any, method: str, body: bytes) -> None:
        with self.lock:
            self.requests.append({"method": method, "path": h.path, "headers": dict(h.headers), "body": body})
        h._json(201, {"id": "stolen"})


@pytest.fixture(scope="module")
def world(fake_banks, tmp_path_factory, trained_model):
    attacker = Attacker().start()
    openid = FakeOpenId().start()
    tokens = FakeTokenService(APP_ID, APP_PASSWORD).start()
    connector = FakeConnector(tokens).start()
    slack = FakeSlack(SLACK_TOKEN).start()
    base = tmp_path_factory.mktemp("identity")
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    credentials["bot.server.channels.teams.BotFrameworkInput"] = {
        "app_id": APP_ID,
        "openid_metadata_url": openid.metadata_url,
        "token_url": tokens.token_url(),
        "http_timeout": 2,
        "allow_private_downloads": True,
    }
    credentials["bot.server.channels.slack.SlackInput"] = {
        "slack_token": SLACK_TOKEN,
        "slack_signing_secret": SLACK_SECRET,
        "slack_api_url": slack.api_url,
        "conversation_granularity": "thread",
    }
    credentials_path = base / "credentials.yml"
    credentials_path.write_text(yaml.safe_dump(credentials, sort_keys=False))
    env = servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(servers.write_test_directory(base / "banks.yml", fake_banks.base_url)),
            "BANKFEED_SETTINGS": str(
                servers.write_test_settings(base / "bankfeed.yml", fake_banks.url("/canary/healthy"), radar=RADAR)
            ),
            "HANDOFF_DB_URL": f"sqlite:///{base / 'product.db'}",
            "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
        }
    )
    for name in (
        "MICROSOFT_APP_ID",
        "MICROSOFT_APP_TENANT_ID",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_API_URL",
        "SLACK_SUPPORT_CHANNEL",
    ):
        env.pop(name, None)
    actions = ActionServer(env, base).start()
    stack = RasaStack(env, base, actions.port, credentials=credentials_path).start()
    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore
    from bot.handoff.tickets import TicketStore

    store = Database(env["HANDOFF_DB_URL"])
    AgentStore(store).create_agent("ida", AGENT_PASSWORD, "Ida")
    world = type("World", (), {})()
    world.__dict__.update(
        stack=stack,
        attacker=attacker,
        tokens=tokens,
        connector=connector,
        slack=slack,
        store=store,
        tickets=TicketStore(store),
        agent=ConsoleClient(stack.url, "ida", AGENT_PASSWORD),
    )
    yield world
    stack.stop()
    actions.stop()
    store.dispose()
    for server in (slack, connector, tokens, openid, attacker):
        server.stop()


def forged(attacker: Attacker, channel: str) -> Dict[str, Any]:
    """What a REST / socket body adds to pass for a Teams or Slack conversation."""
    return {
        "input_channel": channel,
        "metadata": {
            "botframework": {
                "serviceUrl": f"{attacker.base_url}/?x=",  # the bot would POST <serviceUrl>/v3/conversations/...
                "channelId": "msteams",
                "conversation": {"id": VICTIM_TEAMS_CONVERSATION},
                "bot": {"id": f"28:{APP_ID}"},
                "user": {"id": "29:victim"},
            },
            "out_channel": VICTIM_CHANNEL,
            "thread_id": VICTIM_THREAD,
            "users": [],
            "slack": {"is_dm": False, "ts": VICTIM_THREAD},
            "language": "en",
        },
    }


def texts(replies: List[Dict[str, Any]]) -> str:
    return " ".join(r.get("text") or "" for r in replies)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def assert_nothing_left_the_building(world: Any) -> None:
    """Nothing reached the attacker, no connector token was even asked for, and neither the fake Teams
    nor the fake Slack got anything for the victim's conversation."""
    time.sleep(1.5)  # pushes run right after the console call returns; give a misdirected one time to land
    assert world.attacker.requests == [], world.attacker.requests[:2]
    assert world.tokens.issued == [], "a Bot Framework token was fetched for a REST / web conversation"
    assert world.connector.activities(VICTIM_TEAMS_CONVERSATION) == []
    assert world.slack.posts_to(VICTIM_CHANNEL, any_thread=True) == []


@pytest.mark.parametrize("channel", ["botframework", "slack"])
def test_forged_rest_body_escalation_and_specialist_reply_go_nowhere_else(world, channel):
    stack, name = world.stack, f"forged-rest-{channel}-{uuid.uuid4().hex[:6]}"
    extra = forged(world.attacker, channel)
    stack.send(name, "error 102 with chase", **extra)
    stack.send(name, "i want to talk to a person", **extra)
    assert "in the queue" in texts(stack.send(name, "/ask_human", **extra))

    latest = stack.tracker(name)["latest_message"]
    # only the allow-listed key was kept, beside what the server itself adds (the client's pseudonym)
    metadata = dict(latest["metadata"])
    assert set(metadata.pop("client_key")) <= set("0123456789abcdef")
    assert metadata == {"language": "en"}
    assert stack.tracker(name)["latest_input_channel"] == "rest"
    ticket = world.agent.ticket_for(name)
    assert ticket["channel"] == "rest"

    assert world.agent.post(f"/tickets/{ticket['id']}/claim").status_code == 200
    reply = f"Ida here ({channel})."
    assert world.agent.post(f"/tickets/{ticket['id']}/messages", json={"text": reply}).status_code == 201
    assert reply in [m["text"] for m in stack.messages(name)["messages"]]  # delivered where it belongs
    assert_nothing_left_the_building(world)
    assert world.agent.post(f"/tickets/{ticket['id']}/close", json={"note": "done"}).status_code == 200
    assert_nothing_left_the_building(world)


def test_forged_socket_metadata_and_session_ids(world):
    import socketio

    stack = world.stack
    client = socketio.Client(reconnection=False)
    confirmed: List[str] = []
    received: List[Dict[str, Any]] = []
    client.on("session_confirm", lambda sid: confirmed.append(sid))
    client.on("bot_uttered", lambda data: received.append(data))
    client.connect(stack.url, transports=["polling"], wait_timeout=10)
    try:
        client.emit("session_request", {"session_id": "teams-29:victim"})  # another channel's id
        session = wait_until(lambda: confirmed and confirmed[0], 10, "no session_confirm")
        assert session.startswith("web-") and session != "teams-29:victim"

        # a message naming another conversation than the one this socket was given is refused
        client.emit("user_uttered", {"session_id": "teams-29:victim", "message": "error 102 with chase"})
        wait_until(
            lambda: any((r.get("metadata") or {}).get("error") for r in received), 10, "the foreign session id was not refused"
        )

        metadata = forged(world.attacker, "botframework")["metadata"]
        for text in ("error 102 with chase", "i want to talk to a person", "/ask_human"):
            before = len(received)
            client.emit(
                "user_uttered", {"session_id": session, "message": text, "metadata": metadata, "input_channel": "botframework"}
            )
            wait_until(lambda before=before: len(received) > before, 30, f"no answer to {text!r}")
            time.sleep(1.0)  # the rest of the turn's messages
        wait_until(lambda: "in the queue" in texts(received), 30, "not queued")
        assert stack.tracker(session)["latest_input_channel"] == "socketio"
        ticket = world.agent.ticket_for(session)
        assert ticket["channel"] == "socketio"
        assert world.agent.post(f"/tickets/{ticket['id']}/claim").status_code == 200
        reply = "Ida here, on the widget."
        assert world.agent.post(f"/tickets/{ticket['id']}/messages", json={"text": reply}).status_code == 201
        wait_until(
            lambda: any(r.get("text", "").endswith(f": {reply}") and r["metadata"]["agent_text"] == reply for r in received),
            10,
            "the reply did not reach the socket",
        )
        assert_nothing_left_the_building(world)
    finally:
        client.disconnect()


def test_back_online_notice_for_a_forged_conversation_goes_nowhere_else(world, fake_banks):
    stack = world.stack
    fake_banks.set_mode("/monzo/healthy", "error500")
    try:
        for i in range(3):
            stack.send(f"early-{i}-{uuid.uuid4().hex[:6]}", "monzo bank feed error 102")
        name = f"forged-notice-{uuid.uuid4().hex[:6]}"
        extra = forged(world.attacker, "botframework")
        assert "/notify_when_back" in json.dumps(stack.send(name, "getting error 102 with monzo", **extra))
        assert "I'll keep checking Monzo" in texts(stack.send(name, "/notify_when_back", **extra))
        from bot.outages.notices import NoticeBook

        pending = NoticeBook(world.store).pending(stack.conversation_id(name), "Monzo")
        assert pending is not None and pending.channel == "rest"
        fake_banks.set_mode("/monzo/healthy", None)  # the bank is back: the notice goes out
        sent = wait_until(lambda: stack.messages(name)["notices"], 20, "no notice was sent")
        assert sent[0]["outcome"] == "bank_back"
        bot_lines = [e.get("text") or "" for e in stack.tracker(name)["events"] if e["event"] == "bot"]
        assert any(t.startswith("Good news: Monzo") for t in bot_lines)
        assert_nothing_left_the_building(world)
    finally:
        fake_banks.set_mode("/monzo/healthy", None)


def test_a_notice_row_naming_another_channel_is_delivered_by_the_id_only(world, fake_banks):
    """Even if a notice (or ticket) row said "botframework", delivery follows the id's own channel."""
    from bot.outages.notices import NoticeBook

    stack, name = world.stack, f"row-{uuid.uuid4().hex[:6]}"
    stack.send(name, "hello", **forged(world.attacker, "botframework"))
    book = NoticeBook(world.store)
    conversation = stack.conversation_id(name)
    with world.store.writing() as s:  # a row written as the old code did: the body's channel
        from bot.db.models import OutageNotice

        now = world.store.now()
        s.add(
            OutageNotice(
                conversation_id=conversation,
                channel="botframework",
                bank="Chase",
                probe_url=fake_banks.url("/chase/healthy"),
                created_at=now,
                next_check_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    wait_until(lambda: stack.messages(name)["notices"], 20, "no notice was sent")
    assert book.pending(conversation, "Chase") is None
    assert_nothing_left_the_building(world)


def test_conversations_can_be_read_and_written_only_with_an_issued_id_of_their_channel(world):
    stack = world.stack
    rest_id = stack.conversation_id(f"owner-{uuid.uuid4().hex[:6]}")
    stack.send(rest_id, "error 102 with chase")  # the real owner

    # a web id, a Slack or Teams id, a made-up id, a REST id with its tag changed
    r = httpx.post(f"{stack.url}/webhooks/rest/session", timeout=10)
    assert r.status_code == 201 and r.json()["sender"].startswith("rest-")
    tampered = rest_id[:-1] + ("A" if rest_id[-1] != "A" else "B")
    web_id = servers.widget_session(stack.url)
    for foreign in (web_id, "slack-U1_D1", "teams-29:victim", "U1_D1", "rest-made-up", tampered):
        r = httpx.post(f"{stack.url}/webhooks/rest/webhook", json={"sender": foreign, "message": "hi"}, timeout=10)
        assert r.status_code == 403, (foreign, r.status_code)
        assert "POST /webhooks/rest/session" in r.json()["error"]
        r = httpx.get(f"{stack.url}/webhooks/rest/messages", params={"sender": foreign}, timeout=10)
        assert r.status_code == 403 and "error" in r.json(), foreign
    for foreign in (rest_id, "slack-U1_D1", "teams-29:victim", web_id[:-1] + ("A" if web_id[-1] != "A" else "B")):
        r = httpx.get(f"{stack.url}/chat/history", params={"session_id": foreign}, timeout=10)
        assert r.status_code == 403 and "error" in r.json(), foreign
    # the owners still can
    assert httpx.get(f"{stack.url}/chat/history", params={"session_id": web_id}, timeout=10).status_code == 200
    assert stack.messages(rest_id)["messages"] == []


def test_a_socket_asking_for_someone_elses_id_gets_a_new_one_and_none_of_their_messages(world):
    import socketio

    stack = world.stack
    name = f"victim-{uuid.uuid4().hex[:6]}"
    stack.send(name, "error 102 with chase")
    stack.send(name, "i want to talk to a person")
    assert "in the queue" in texts(stack.send(name, "/ask_human"))
    victim = stack.conversation_id(name)

    client = socketio.Client(reconnection=False)
    confirmed: List[str] = []
    received: List[Any] = []
    client.on("session_confirm", lambda sid: confirmed.append(sid))
    client.on("bot_uttered", lambda data: received.append(data))
    client.connect(stack.url, transports=["polling"], wait_timeout=10)
    try:
        client.emit("session_request", {"session_id": victim})  # the victim's REST id
        session = wait_until(lambda: confirmed and confirmed[0], 10, "no session_confirm")
        assert session != victim and session.startswith("web-")
        client.emit("user_uttered", {"session_id": victim, "message": "it's fixed"})  # trying to close their ticket
        wait_until(
            lambda: any(isinstance(r, dict) and (r.get("metadata") or {}).get("error") for r in received), 10, "not refused"
        )
        ticket = world.agent.ticket_for(name)
        assert world.agent.post(f"/tickets/{ticket['id']}/claim").status_code == 200
        secret = "Ida here: for the victim only."
        assert world.agent.post(f"/tickets/{ticket['id']}/messages", json={"text": secret}).status_code == 201
        assert secret in [m["text"] for m in stack.messages(name)["messages"]]
        time.sleep(1.5)
        assert not any(secret in json.dumps(r) or "joined" in json.dumps(r) for r in received), received
        assert world.tickets.get_ticket(ticket["id"]).status == "assigned"  # not closed by the intruder
    finally:
        client.disconnect()
