"""Microsoft Teams (Bot Framework) channel end to end.

The real Rasa server (with the product's usual channels plus ``bot.server.channels.teams.BotFrameworkInput``)
and the real action server talk to local fakes of Microsoft's services (tests/fake_botframework.py):
OpenID metadata + signing keys, the client-credentials token endpoint and the Bot Connector API that
replies are posted to. Activities are signed like the Bot Framework signs them (RS256 JWT).

What the tests send is built with Microsoft's Bot Framework schema (``botbuilder-schema``:
``Activity(...).serialize()``, ``ChannelAccount``, ``ConversationAccount``, ``Attachment``, ``Mention``);
what the bot posts to the fake connector is read back with it (``Activity`` / ``HeroCard`` /
``CardAction`` objects; any field the schema does not know, or of the wrong case or type, is a
``schema_problems`` entry, asserted empty after every test). Deliberately malformed bodies are edited
after serialisation (the schema cannot build them).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import httpx
import pytest
import yaml
from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    Attachment,
    AttachmentLayoutTypes,
    CardAction,
    ChannelAccount,
    ConversationAccount,
    Mention,
    TextFormatTypes,
)

from bot.server.channels.teams import (
    MULTI_TENANT_TOKEN_URL,
    BotFrameworkInput,
    BotFrameworkSettings,
    card_action,
    hero_cards,
)
from bot.server.handoff import RECEIVED
from tests import servers
from tests.fake_botframework import (
    HERO_CARD,
    FakeConnector,
    FakeFileHost,
    FakeOpenId,
    FakeTokenService,
    activity_model,
    hero_card,
    new_rsa_key,
)

APP_ID = "7c1b5d8e-0000-4a6b-9c1d-bank5feed0001"
APP_PASSWORD = "test-secret-" + secrets.token_urlsafe(12)
BOT_ACCOUNT = ChannelAccount(id=f"28:{APP_ID}", name="Bank Feed Helper")
BOT = BOT_ACCOUNT.serialize()
TENANT = "tenant-0001"
SECTION = "bot.server.channels.teams.BotFrameworkInput"
AGENT_PASSWORD = "correct horse battery staple"
MAX_FILE = 200_000  # the channel's cap on shared files in these tests
EXPORTS = servers.ROOT / "tests" / "fixtures" / "bank_exports"


# ------------------------------------------------------------------------------------------- helpers
def typed(activities: List[Dict[str, Any]]) -> List[Activity]:
    """Posted activities (JSON) as botbuilder-schema ``Activity`` objects, checked (``activity_model``)."""
    return [activity_model(a) for a in activities]


def texts(activities: List[Activity]) -> str:
    """Everything the user reads: message texts and hero-card texts."""
    parts = []
    for a in activities:
        parts.append(a.text or "")
        for att in a.attachments or []:
            if att.content_type == HERO_CARD:
                parts.append(hero_card(att).text or "")
    return " ".join(p for p in parts if p)


def card_buttons(activities: List[Activity]) -> List[CardAction]:
    return [
        b
        for a in activities
        for att in a.attachments or []
        if att.content_type == HERO_CARD
        for b in hero_card(att).buttons or []
    ]


def payloads(activities: List[Activity]) -> List[str]:
    return [b.value["payload"] for b in card_buttons(activities) if b.type == ActionTypes.message_back]


def assert_from_bot_to(activity: Activity, conv_or_user: Any) -> None:
    """Addressed back into the conversation, from the bot to the user (typed fields)."""
    user_id = getattr(conv_or_user, "user_id", conv_or_user)
    assert activity.type == ActivityTypes.message
    assert (activity.from_property.id, activity.from_property.name) == (BOT_ACCOUNT.id, BOT_ACCOUNT.name)
    assert activity.recipient.id == user_id
    if hasattr(conv_or_user, "conversation_id"):
        assert activity.conversation.id == conv_or_user.conversation_id


@dataclass
class Conversation:
    user_id: str
    conversation_id: str
    conversation_type: str = "personal"

    @property
    def sender(self) -> str:
        """The bot's id for this user's conversation (namespaced: ``teams-<from.id>``)."""
        return f"teams-{self.user_id}"


class TeamsStack:
    def __init__(self, fakes: SimpleNamespace, port: int, token: str, log: Path):
        self.fakes, self.port, self.api_token, self.log_path = fakes, port, token, log
        self.proc: Optional[servers.Process] = None
        self.startup: Dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook(self) -> str:
        return f"{self.url}/webhooks/botframework/webhook"

    @property
    def service_url(self) -> str:
        return self.fakes.connector.base_url + "/amer/"  # Teams service URLs carry a region path

    def new_conversation(self, kind: str = "personal") -> Conversation:
        if kind == "channel":
            return Conversation(
                f"29:user-{uuid.uuid4().hex[:12]}",
                f"19:{uuid.uuid4().hex[:16]}@thread.tacv2;messageid={int(time.time() * 1000)}",
                "channel",
            )
        return Conversation(f"29:user-{uuid.uuid4().hex[:12]}", f"a:conv-{uuid.uuid4().hex[:16]}")

    def activity(self, conv: Conversation, text: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """A message activity as Teams sends it, built with botbuilder-schema's ``Activity`` (``fields`` by
        the schema's names: ``attachments=[Attachment(...)]``, ``entities=[Mention(...)]``, ``value``,
        ``channel_id``, ``type``, ``members_added``...); its JSON."""
        values: Dict[str, Any] = dict(
            type=ActivityTypes.message,
            id=uuid.uuid4().hex[:13],
            timestamp=datetime.datetime(2024, 5, 1, 9, 0, tzinfo=datetime.timezone.utc),
            channel_id="msteams",
            service_url=self.service_url,
            from_property=ChannelAccount(id=conv.user_id, name="Sam Owner", aad_object_id=str(uuid.uuid4())),
            conversation=ConversationAccount(id=conv.conversation_id, conversation_type=conv.conversation_type),
            recipient=BOT_ACCOUNT,
            channel_data={"tenant": {"id": TENANT}},
            locale="en-US",
            text_format=TextFormatTypes.plain,
            text=text,
        )
        values.update(fields)
        activity = Activity(**values).serialize()
        # the tenant as Teams sends it and the Activity spec names it (botbuilder-schema's Python
        # ConversationAccount would write "tenantID": tests/fake_botframework.py SPEC_KEYS)
        activity["conversation"]["tenantId"] = TENANT
        activity_model(activity)  # what we send reads back unchanged
        return activity

    def sign(self, **overrides: Any) -> str:
        return self.fakes.openid.sign(APP_ID, overrides.pop("service_url", self.service_url), **overrides)

    def post(
        self, activity: Any, token: Optional[str] = "sign", raw: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None
    ) -> httpx.Response:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token == "sign":
            token = self.sign()
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        body = raw if raw is not None else json.dumps(activity).encode()
        return httpx.post(self.webhook, content=body, headers=h, timeout=30)

    def say(self, conv: Conversation, text: Optional[str] = None, **fields: Any) -> List[Activity]:
        """Sends a signed message; the activities the bot posted into the conversation in response
        (botbuilder-schema objects)."""
        before = len(self.fakes.connector.activities(conv.conversation_id))
        r = self.post(self.activity(conv, text, **fields))
        assert r.status_code == 200, (r.status_code, r.text, self.tail())
        return self.fakes.connector.typed(conv.conversation_id)[before:]

    def tracker(self, sender: str) -> Dict[str, Any]:
        r = httpx.get(f"{self.url}/conversations/{sender}/tracker", params={"token": self.api_token}, timeout=30)
        r.raise_for_status()
        return r.json()

    def user_events(self, sender: str) -> List[Dict[str, Any]]:
        return [e for e in self.tracker(sender)["events"] if e["event"] == "user"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self) -> str:
        return "\n".join(self.log().splitlines()[-30:])


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fakes():
    openid = FakeOpenId().start()
    tokens = FakeTokenService(APP_ID, APP_PASSWORD).start()
    connector = FakeConnector(tokens).start()
    files = FakeFileHost().start()
    yield SimpleNamespace(openid=openid, tokens=tokens, connector=connector, files=files)
    for server in (files, connector, tokens, openid):
        server.stop()


@pytest.fixture(autouse=True)
def activities_fit_the_schema(fakes):
    """Every test: all the bot posted reads back unchanged through botbuilder-schema."""
    yield
    assert fakes.connector.schema_problems == [], [p["why"] for p in fakes.connector.schema_problems]


@pytest.fixture(scope="module")
def teams(fakes, action_server, product_env, trained_model, tmp_path_factory):
    """The Rasa server with the Teams channel, started while Microsoft's endpoints are unreachable."""
    directory = tmp_path_factory.mktemp("teams")
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    credentials = {k: v for k, v in credentials.items() if "botframework" not in k.lower() and "teams" not in k.lower()}
    credentials[SECTION] = {
        "app_id": APP_ID,  # the password comes from MICROSOFT_APP_PASSWORD
        "openid_metadata_url": fakes.openid.metadata_url,
        "token_url": fakes.tokens.token_url(),
        "http_timeout": 2,
        "jwks_retry_seconds": 0,
        "jwks_refresh_min_seconds": 0,
        "token_retry_seconds": 1,
        "max_file_bytes": MAX_FILE,
        # the fakes are on 127.0.0.1: an allowed service host here (the outbound policy's allowance for
        # 127.0.0.1 is the test stack's outbound.teams setting, tests/servers.py)
        "service_url_hosts": ["127.0.0.1"],
    }
    credentials_path = directory / "credentials.yml"
    credentials_path.write_text(yaml.safe_dump(credentials, sort_keys=False))
    endpoints = servers.write_endpoints(directory / "endpoints.yml", action_server.port, directory / "tracker.db")
    env = {**product_env, "MICROSOFT_APP_PASSWORD": APP_PASSWORD}
    for name in ("MICROSOFT_APP_ID", "MICROSOFT_APP_TENANT_ID"):
        env.pop(name, None)

    stack = TeamsStack(fakes, servers.free_port(), secrets.token_urlsafe(16), directory / "rasa.log")
    fakes.openid.down()
    stack.proc = servers.start_rasa_server(
        stack.port, endpoints, stack.api_token, stack.log_path, env, credentials=credentials_path
    )
    try:
        # what happens while login.botframework.com is unreachable (recorded here, asserted in a test)
        stack.startup["openid_hits_after_start"] = dict(fakes.openid.hits)
        conv = stack.new_conversation()
        r = stack.post(stack.activity(conv, "error 102 with chase"))
        stack.startup.update(
            status=r.status_code,
            retry_after=r.headers.get("Retry-After"),
            conv=conv,
            posted=len(fakes.connector.activities(conv.conversation_id)),
            unsigned=stack.post(stack.activity(conv, "hi"), token=None).status_code,
        )
        fakes.openid.up()
        yield stack
    finally:
        fakes.openid.up()
        stack.proc.stop()


# ------------------------------------------------------------------------------------------- start-up
def test_starts_without_microsoft_and_recovers_when_it_is_back(teams, fakes):
    s = teams.startup
    # nothing was fetched at construction or start-up, and the server started anyway
    assert s["openid_hits_after_start"] == {FakeOpenId.METADATA_PATH: 0, FakeOpenId.KEYS_PATH: 0}
    # while the keys can't be fetched: 503 (can't verify) with Retry-After, nothing processed
    assert s["status"] == 503 and s["retry_after"]
    assert s["posted"] == 0
    assert s["unsigned"] == 401  # no token: refused without any network
    assert teams.user_events(s["conv"].sender) == []
    assert "Could not fetch the Bot Framework signing keys" in teams.log()

    # Microsoft is back: the same conversation now works
    replies = teams.say(s["conv"], "error 102 with chase")
    assert "answering normally" in texts(replies)
    assert fakes.openid.hits[FakeOpenId.KEYS_PATH] >= 1


# ------------------------------------------------------------------------------------------- the product over Teams
def test_error_102_gets_the_bank_check_and_buttons_and_clicks_move_on(teams, fakes, fake_banks):
    conv = teams.new_conversation()
    incoming = teams.activity(conv, "getting erorr 102 on my chase account")
    r = teams.post(incoming)
    assert r.status_code == 200, teams.tail()
    replies = fakes.connector.typed(conv.conversation_id)
    assert "answering normally" in texts(replies)  # the live bank-site check ran
    assert fake_banks.hits("/chase/healthy") >= 1
    assert "/bank_site_problem" in payloads(replies) and "/deny" in payloads(replies)

    card_reply = next(a for a in replies if a.attachments)
    assert card_reply.attachments[0].content_type == HERO_CARD
    assert card_reply.attachment_layout == AttachmentLayoutTypes.list
    assert card_reply.suggested_actions is None  # buttons are card actions, which stay on the message
    card = hero_card(card_reply.attachments[0])
    assert card.text and all(isinstance(b, CardAction) for b in card.buttons)
    deny = next(b for b in card_buttons(replies) if b.value == {"payload": "/deny"})
    assert (deny.type, deny.text, deny.display_text) == (ActionTypes.message_back, "/deny", deny.title)
    assert deny.serialize() == {
        "type": "messageBack",
        "title": deny.title,
        "text": "/deny",
        "displayText": deny.title,
        "value": {"payload": "/deny"},
    }
    for a in replies:  # addressed back into the same conversation, from the bot to the user
        assert_from_bot_to(a, conv)
        assert a.reply_to_id == incoming["id"]
        assert a.conversation.tenant_id == TENANT and a.channel_data["tenant"] == {"id": TENANT}
        if a.text:
            assert a.text_format == TextFormatTypes.markdown

    # imBack: the payload arrives as the message text -> the refresh step
    replies = teams.say(conv, "/deny")
    assert "refresh the connection" in texts(replies)
    # messageBack (what our cards send): Teams shows the title, the bot gets value.payload
    replies = teams.say(conv, None, value={"payload": "/deny"})
    assert "without you telling me any password" in texts(replies)

    slots = teams.tracker(conv.sender)["slots"]
    assert slots["bank"] == "Chase" and slots["error_code"] == "102"
    assert slots["steps_tried"][:2] == ["site_check", "refresh"]
    latest = teams.tracker(conv.sender)["latest_message"]
    assert latest["metadata"]["botframework"]["conversation"]["id"] == conv.conversation_id

    # one client-credentials token for all of it, from the configured endpoint, with the right scope
    token_requests = fakes.tokens.token_requests()
    assert token_requests and {t["client_id"] for t in token_requests} == {APP_ID}
    assert {t["scope"] for t in token_requests} == {"https://api.botframework.com/.default"}
    assert len(token_requests) == 1


def test_channel_message_with_mention_and_redelivery(teams, fakes):
    conv = teams.new_conversation("channel")
    mention = "<at>Bank Feed Helper</at>"
    activity = teams.activity(
        conv, f"{mention} error 102 with chase", entities=[Mention(type="mention", text=mention, mentioned=BOT_ACCOUNT)]
    )
    assert teams.post(activity).status_code == 200
    replies = fakes.connector.typed(conv.conversation_id)
    assert "answering normally" in texts(replies)
    # the conversation id (with ';' '@' ':') is URL-encoded in the connector path
    paths = {p["path"] for p in fakes.connector.posts if p["conversation_id"] == conv.conversation_id}
    assert all("%3B" in p and "%40" in p for p in paths)
    assert teams.user_events(conv.sender)[-1]["text"] == "error 102 with chase"

    # the Bot Framework redelivers the same activity: answered once only
    assert teams.post(activity).status_code == 200
    assert len(fakes.connector.activities(conv.conversation_id)) == len(replies)


# ------------------------------------------------------------------------------------------- authentication
def test_bad_tokens_are_refused_and_nothing_is_processed(teams, fakes):
    conv = teams.new_conversation()
    activity = teams.activity(conv, "error 102 with chase")
    other_key = new_rsa_key()
    cases = {
        "unsigned": None,
        "not a jwt": "not-a-jwt",
        "other key, known kid": teams.sign(key=other_key),
        "other key, unknown kid": teams.sign(key=other_key, kid="attacker-key"),
        "expired": teams.sign(expires_in=-3600),
        "wrong audience": teams.sign(audience="someone-elses-bot"),
        "wrong issuer": teams.sign(issuer="https://sts.windows.net/evil/"),
        "no kid": fakes.openid.sign(APP_ID, teams.service_url, kid=""),
        "HS256": fakes.openid.sign(APP_ID, teams.service_url, key="shared-secret-" * 4, algorithm="HS256"),
        "no exp": _without_claim(fakes.openid, "exp"),
        "token for another serviceUrl": teams.sign(service_url="https://attacker.example/"),
        "token without a serviceurl claim": teams.sign(service_url=None),
        "not yet valid": teams.sign(extra={"nbf": int(time.time()) + 3600}),
    }
    for name, token in cases.items():
        r = teams.post(activity, token=token)
        assert r.status_code == 401, (name, r.status_code, r.text)
    r = teams.post(teams.activity(conv, "hello", channel_id="slack"))  # key not endorsed for that channel
    assert r.status_code == 401
    r = teams.post(activity, token=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401
    assert fakes.connector.activities(conv.conversation_id) == []
    assert teams.user_events(conv.sender) == []
    assert "Rejected a Bot Framework request (401)" in teams.log()


def _without_claim(openid: FakeOpenId, claim: str) -> str:
    import jwt as pyjwt

    now = int(time.time())
    claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "nbf": now - 5, "exp": now + 600}
    claims.pop(claim)
    return pyjwt.encode(claims, openid.key, algorithm="RS256", headers={"kid": openid.kid})


def test_rotated_signing_key_is_picked_up(teams, fakes):
    fakes.openid.add_key("test-key-2")
    conv = teams.new_conversation()
    r = teams.post(teams.activity(conv, "error 102 with chase"), token=teams.sign(kid="test-key-2"))
    assert r.status_code == 200
    assert "answering normally" in texts(fakes.connector.typed(conv.conversation_id))


def test_malformed_bodies_are_4xx(teams, fakes):
    conv = teams.new_conversation()
    assert teams.post(None, raw=b"{not json").status_code == 400
    assert teams.post(None, raw=b"\xff\xfe").status_code == 400
    assert teams.post([1, 2, 3]).status_code == 400
    assert teams.post({"text": "no type"}).status_code == 400
    bad = teams.activity(conv, "hi")
    del bad["conversation"]
    assert teams.post(bad).status_code == 400
    bad = teams.activity(conv, "hi")
    bad["from"] = "someone"
    assert teams.post(bad).status_code == 400
    bad = teams.activity(conv, "hi")
    bad["text"] = 102  # botbuilder-schema would make it "102"
    assert teams.post(bad).status_code == 400
    assert teams.post(None, raw=b"{not json", token=None).status_code == 401  # auth first
    assert teams.post(None, raw=b"x" * 300_000).status_code == 413
    # other activity types are acknowledged and ignored
    update = teams.activity(conv, None, type=ActivityTypes.conversation_update, members_added=[BOT_ACCOUNT])
    assert teams.post(update).status_code == 200
    assert fakes.connector.activities(conv.conversation_id) == []
    assert teams.proc.proc.poll() is None


def test_token_endpoint_failure_is_logged_and_the_conversation_goes_on(teams, fakes):
    conv = teams.new_conversation()
    # a rotated secret: the cached token is refused (401), the channel fetches a new one and resends
    fakes.connector.revoke_tokens()
    requests_before = len(fakes.tokens.token_requests())
    assert "answering normally" in texts(teams.say(conv, "error 102 with chase"))
    assert len(fakes.tokens.token_requests()) == requests_before + 1

    fakes.connector.revoke_tokens()  # refused again...
    fakes.tokens.failing = True  # ...and Microsoft's login is failing
    try:
        requests_before = len(fakes.tokens.token_requests())
        r = teams.post(teams.activity(conv, "/deny"))
        assert r.status_code == 200
        assert texts(teams.fakes.connector.typed(conv.conversation_id)).count("refresh the connection") == 0
        assert "Could not get BotFramework token" in teams.log()
        # one attempt for the whole turn: later messages don't wait for a login that just failed
        assert len(fakes.tokens.token_requests()) == requests_before + 1
    finally:
        fakes.tokens.failing = False
    time.sleep(1.2)  # token_retry_seconds
    replies = teams.say(conv, "/deny")  # the conversation carries on with a fresh token
    assert "without you telling me any password" in texts(replies)


# ------------------------------------------------------------------------------------------- hand-off over Teams
class Console:
    def __init__(self, base_url: str, username: str, password: str):
        self.http = httpx.Client(base_url=f"{base_url}/agent/api", timeout=30)
        r = self.http.post("/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        self.http.headers["X-CSRF-Token"] = r.json()["csrf_token"]  # the cookie alone changes nothing

    def ticket_for(self, conversation_id: str) -> Dict[str, Any]:
        tickets = self.http.get("/tickets", params={"status": "waiting,assigned"}).json()["tickets"]
        return next(t for t in tickets if t["conversation_id"] == conversation_id)


def test_handoff_to_a_specialist_over_teams(teams, fakes, handoff_db):
    conv = teams.new_conversation()
    teams.say(conv, "error 102 with chase")
    # a file whose dates could be either order: its question waits for an answer
    ambiguous = fakes.files.add("ambiguous_dates.csv", (EXPORTS / "ambiguous_dates.csv").read_bytes())
    assert "/upload_date_order DMY" in payloads(
        teams.say(conv, None, attachments=[download_info("ambiguous_dates.csv", ambiguous)])
    )
    teams.say(conv, "I want to talk to a person")
    replies = teams.say(conv, "/ask_human")
    assert "in the queue" in texts(replies)
    assert teams.tracker(conv.sender)["slots"]["handoff_status"] == "waiting"

    # waiting: one short acknowledgement of the first message, then the bot stays silent
    assert texts(teams.say(conv, "hello? anyone there")) == RECEIVED
    assert teams.say(conv, "are you there?") == []

    username = f"teams-{uuid.uuid4().hex[:6]}"
    handoff_db.agents.create_agent(username, AGENT_PASSWORD, "Tess")
    console = Console(teams.url, username, AGENT_PASSWORD)
    ticket = console.ticket_for(conv.sender)
    assert ticket["channel"] == "botframework" and ticket["bank"] == "Chase"

    before = len(fakes.connector.activities(conv.conversation_id))
    r = console.http.post(f"/tickets/{ticket['id']}/claim", json={})
    assert r.status_code == 200, r.text
    joined = typed(fakes.connector.wait_for(conv.conversation_id, lambda a: len(a) > before)[before:])
    assert "Tess" in texts(joined) and "joined" in texts(joined)

    r = console.http.post(f"/tickets/{ticket['id']}/messages", json={"text": "Hi, Tess here. Chase had an outage this morning."})
    assert r.status_code == 201, r.text
    activities = fakes.connector.wait_for(
        conv.conversation_id, lambda a: any(x.get("text") == "Tess: Hi, Tess here. Chase had an outage this morning." for x in a)
    )
    pushed = next(
        a for a in typed(activities) if a.text == "Tess: Hi, Tess here. Chase had an outage this morning."
    )  # named in the text
    assert_from_bot_to(pushed, conv)
    assert pushed.text_format == TextFormatTypes.markdown and pushed.reply_to_id is None  # a push answers nothing

    # the user's answer goes to the specialist, not the bot
    before = len(fakes.connector.activities(conv.conversation_id))
    assert teams.say(conv, "ok what should i do") == []
    # a file sent meanwhile is not checked by the bot: the specialist sees that a file came
    url = fakes.files.add("during_handoff.csv", (EXPORTS / "parentheses_negatives.csv").read_bytes())
    assert teams.say(conv, None, attachments=[download_info("during_handoff.csv", url)]) == []
    assert fakes.files.requests_for(url) == []
    # nor is the answer to the earlier date-order question: it goes to the specialist
    assert teams.say(conv, None, value={"payload": "/upload_date_order DMY"}) == []
    assert len(fakes.files.requests_for(ambiguous)) == 1
    messages = console.http.get(f"/tickets/{ticket['id']}").json()["messages"]
    assert any(m["text"] == "ok what should i do" for m in messages)
    assert any(m["text"] == "(shared a file: during_handoff.csv)" for m in messages)
    assert any(m["text"] == "/upload_date_order DMY" for m in messages)

    # hand back: the notice comes with the bot's buttons as a card
    r = console.http.post(f"/tickets/{ticket['id']}/return", json={"note": "outage over"})
    assert r.status_code == 200, r.text
    back = typed(fakes.connector.wait_for(conv.conversation_id, lambda a: len(a) > before)[before:])
    assert "handed you back" in texts(back) and "/fixed_it" in payloads(back)
    replies = teams.say(conv, None, value={"payload": "/fixed_it"})
    assert replies  # the bot answers again


# ------------------------------------------------------------------------------------------- shared files
def csv_attachments(activities: List[Activity]) -> List[Attachment]:
    return [att for a in activities for att in a.attachments or [] if att.content_type == "text/csv"]


def inline_bytes(attachment: Attachment) -> bytes:
    prefix = "data:text/csv;base64,"
    assert attachment.content_url.startswith(prefix)
    return base64.b64decode(attachment.content_url[len(prefix) :])


def download_info(name: str, url: str) -> Attachment:
    """A file a user sent in a Teams chat (Teams' file download info attachment)."""
    return Attachment(
        content_type="application/vnd.microsoft.teams.file.download.info",
        name=name,
        content={"downloadUrl": url, "uniqueId": uuid.uuid4().hex, "fileType": name.rsplit(".", 1)[-1]},
    )


def test_attached_broken_csv_gets_the_report_and_the_converted_csv(teams, fakes):
    conv = teams.new_conversation()
    url = fakes.connector.add_attachment((EXPORTS / "parentheses_negatives.csv").read_bytes())
    replies = teams.say(
        conv,
        "",
        attachments=[
            Attachment(content_type="text/html", content="<p>here</p>"),  # Teams' HTML copy of the message: not a file
            Attachment(content_type="text/csv", content_url=url, name="parentheses_negatives.csv"),
        ],
    )
    assert len(replies) == 1, replies
    (reply,) = replies
    assert "Row 2" in reply.text and "parentheses" in reply.text
    assert_from_bot_to(reply, conv)
    assert reply.text_format == TextFormatTypes.markdown
    (csv,) = csv_attachments(replies)
    content = inline_bytes(csv)
    assert content.startswith(b"Date,Description,Amount") and b"Office Depot,-45.00" in content
    assert csv.name.endswith(".csv")
    # fetched from the serviceUrl host with the connector token
    gets = [g for g in fakes.connector.attachment_gets if url.endswith(f"/{g['id']}/views/original")]
    assert len(gets) == 1 and gets[0]["authorized"]
    assert teams.user_events(conv.sender) == []  # not a bot turn


def test_file_download_info_is_fetched_without_our_token(teams, fakes):
    conv = teams.new_conversation()
    url = fakes.files.add("currency_symbols.csv", (EXPORTS / "currency_symbols.csv").read_bytes())
    replies = teams.say(conv, None, attachments=[download_info("currency_symbols.csv", url)])
    assert "currency symbol" in texts(replies) and "Row 2" in texts(replies)
    (csv,) = csv_attachments(replies)
    assert inline_bytes(csv).startswith(b"Date,Description,Amount")
    (request,) = fakes.files.requests_for(url)
    assert request["authorization"] is None  # the connector token never leaves the serviceUrl host


def test_too_large_qif_and_hostile_attachments_get_clear_answers(teams, fakes):
    conv = teams.new_conversation()
    big = b"Date,Description,Amount\n" + b"01/02/2024,x,1.00\n" * 20_000  # ~360 KB > MAX_FILE
    for chunked in (False, True):  # declared (Content-Length) and only found while streaming
        url = fakes.files.add("year.csv", big, chunked=chunked)
        replies = teams.say(conv, None, attachments=[download_info("year.csv", url)])
        assert "too large" in texts(replies), (chunked, replies)
        assert csv_attachments(replies) == []
    url = fakes.files.add("statement.qif", (EXPORTS / "statement.qif").read_bytes())
    replies = teams.say(conv, None, attachments=[download_info("statement.qif", url)])
    assert "QIF" in texts(replies) and "Web Connect" in texts(replies) and csv_attachments(replies) == []
    url = fakes.connector.add_attachment((EXPORTS / "garbage.bin").read_bytes())
    replies = teams.say(conv, None, attachments=[Attachment(content_type="text/csv", content_url=url, name="x.csv")])
    assert replies and csv_attachments(replies) == []
    replies = teams.say(conv, None, attachments=[download_info("gone.csv", fakes.files.base_url + "/files/nope/gone.csv")])
    assert "couldn't download" in texts(replies)
    assert teams.proc.proc.poll() is None


def test_ambiguous_dates_ask_with_buttons_and_the_answer_converts(teams, fakes):
    conv = teams.new_conversation()
    url = fakes.files.add("ambiguous_dates.csv", (EXPORTS / "ambiguous_dates.csv").read_bytes())
    replies = teams.say(conv, None, attachments=[download_info("ambiguous_dates.csv", url)])
    assert "03/04/2024" in texts(replies) and csv_attachments(replies) == []
    assert payloads(replies) == ["/upload_date_order MDY", "/upload_date_order DMY"]
    replies = teams.say(conv, None, value={"payload": "/upload_date_order DMY"})
    (csv,) = csv_attachments(replies)
    assert inline_bytes(csv).startswith(b"Date,Description,Amount\r\n04/03/2024,Coffee shop,-4.50")
    assert len(fakes.files.requests_for(url)) == 1  # the kept bytes, not a second download
    replies = teams.say(conv, None, value={"payload": "/upload_date_order DMY"})  # clicked again: file gone
    assert "no longer have that file" in texts(replies)
    assert teams.user_events(conv.sender) == []


async def test_attachment_urls_are_restricted_without_the_test_flag(fakes):
    from bot.outbound import OutboundPolicy
    from bot.server.channels.file_replies import FileRefused

    settings = BotFrameworkSettings.from_credentials({"app_id": APP_ID, "app_password": "pw"})
    settings = dataclasses.replace(settings, outbound=OutboundPolicy())  # the production policy
    channel = BotFrameworkInput(settings=settings)
    url = fakes.files.add("x.csv", b"Date,Description,Amount\n")
    for bad in (
        url,
        "http://10.0.0.5/x.csv",
        "http://[::1]/x.csv",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://user:pw@example.com/x.csv",
    ):
        with pytest.raises(FileRefused):
            await channel.downloads.download(bad, "https://smba.trafficmanager.net/amer/")
    assert fakes.files.requests_for(url) == []


# ------------------------------------------------------------------------------------------- in-process units
class _Request:
    def __init__(self, body: Any, authorization: Optional[str] = None):
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"Authorization": authorization} if authorization else {}


async def test_without_app_id_the_channel_loads_but_answers_503(monkeypatch, fakes):
    for name in ("MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD", "MICROSOFT_APP_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    hits = dict(fakes.openid.hits)
    channel = BotFrameworkInput.from_credentials(None)
    assert not channel.settings.configured
    called = []

    async def on_new_message(message):
        called.append(message)

    r = await channel.handle_request(_Request({"type": "message"}, "Bearer x"), on_new_message)
    assert r.status == 503 and called == []
    assert fakes.openid.hits == hits
    assert await channel.push_to_conversation("29:x", {}, "hello", None) is False


def test_settings_env_fallbacks_and_single_tenant(monkeypatch):
    env = {
        "MICROSOFT_APP_ID": "id-from-env",
        "MICROSOFT_APP_PASSWORD": "pw",
        "MICROSOFT_APP_TENANT_ID": "contoso.onmicrosoft.com",
    }
    s = BotFrameworkSettings.from_credentials({}, env)
    assert s.app_id == "id-from-env" and s.configured
    assert s.token_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    s = BotFrameworkSettings.from_credentials(
        {"app_id": "from-yaml", "allowed_issuers": "https://a, https://b"}, {"MICROSOFT_APP_PASSWORD": "pw"}
    )
    assert s.app_id == "from-yaml" and s.token_url == MULTI_TENANT_TOKEN_URL
    assert s.allowed_issuers == ("https://a", "https://b")
    assert s.openid_metadata_url == "https://login.botframework.com/v1/.well-known/openidconfiguration"


async def test_the_output_channel_sends_every_kind_of_bot_message(fakes):
    """TeamsOutput is a Rasa OutputChannel of its own: text, buttons, quick replies, images, elements
    and custom JSON all reach the conversation, from the bot to the user."""
    from bot.outbound import OutboundPolicy
    from bot.server.channels.teams import TeamsOutput

    settings = BotFrameworkSettings.from_credentials(
        {
            "app_id": APP_ID,
            "app_password": APP_PASSWORD,
            "token_url": fakes.tokens.token_url(),
            "http_timeout": 2,
            "service_url_hosts": "127.0.0.1",
        }
    )
    connector = BotFrameworkInput(settings=dataclasses.replace(settings, outbound=OutboundPolicy(allow=("127.0.0.1",)))).connector
    conversation = f"a:output-{uuid.uuid4().hex[:8]}"
    output = TeamsOutput(connector, {"id": conversation}, BOT, fakes.connector.base_url + "/amer/", reply_to_id="act-1")
    user = "teams-29:user-output"
    await output.send_response(user, {"text": "hello"})
    await output.send_response(user, {"text": "pick", "buttons": [{"title": "Yes", "payload": "/affirm"}]})
    await output.send_response(user, {"text": "or", "quick_replies": [{"title": "No", "payload": "/deny"}]})
    await output.send_response(user, {"image": "https://example.com/steps.png"})
    await output.send_elements(user, [{"text": "an element"}])
    await output.send_response(user, {"custom": {"text": "custom", "value": {"k": 1}}})
    sent = fakes.connector.typed(conversation)
    assert [a.text for a in sent] == ["hello", "", "", "", "an element", "custom"]
    for a in sent:
        assert_from_bot_to(a, "29:user-output")
        assert a.reply_to_id == "act-1" and a.conversation.id == conversation
    assert sent[0].text_format == TextFormatTypes.markdown
    assert payloads(sent[1:3]) == ["/affirm", "/deny"] and texts(sent[1:3]) == "pick or"
    assert [a.attachment_layout for a in sent[1:3]] == [AttachmentLayoutTypes.list] * 2
    (image,) = sent[3].attachments
    assert image.content_type == HERO_CARD and [i.url for i in hero_card(image).images] == ["https://example.com/steps.png"]
    assert sent[5].value == {"k": 1}


def test_buttons_render_as_hero_card_actions():
    """Our card actions and hero cards, read with botbuilder-schema's CardAction / HeroCard."""
    yes = card_action({"title": "Yes", "payload": "/affirm"})
    assert CardAction.deserialize(yes).serialize() == yes  # nothing the schema does not know
    assert CardAction.deserialize(yes).type == ActionTypes.message_back
    docs = CardAction.deserialize(card_action({"title": "Docs", "url": "https://quickbooks.intuit.com"}))
    assert (docs.type, docs.title, docs.value) == (ActionTypes.open_url, "Docs", "https://quickbooks.intuit.com")
    cards = [
        hero_card(Attachment.deserialize(c))
        for c in hero_cards("Pick one", [{"title": str(i), "payload": f"/p{i}"} for i in range(8)])
    ]
    assert [len(c.buttons) for c in cards] == [6, 2]
    assert cards[0].text == "Pick one" and cards[1].text is None


async def test_unreachable_token_endpoint_is_logged_not_raised(caplog):
    from bot.outbound import OutboundPolicy

    settings = BotFrameworkSettings.from_credentials(
        {
            "app_id": APP_ID,
            "app_password": "pw",
            "token_url": f"http://127.0.0.1:{servers.free_port()}/t",
            "http_timeout": 1,
            "service_url_hosts": "127.0.0.1",
        }
    )
    settings = dataclasses.replace(settings, outbound=OutboundPolicy(allow=("127.0.0.1",)))
    channel = BotFrameworkInput(settings=settings)
    metadata = {
        "botframework": {
            "serviceUrl": f"http://127.0.0.1:{servers.free_port()}",
            "conversation": {"id": "a:1"},
            "bot": BOT,
            "user": {"id": "29:u"},
        }
    }
    with caplog.at_level(logging.ERROR, logger="bot.server.channels.teams"):
        await channel.push_to_conversation("29:u", metadata, "hello", [{"title": "Yes", "payload": "/affirm"}])
    assert "Could not get BotFramework token" in caplog.text


def test_the_not_configured_warning_reaches_the_log_whole(caplog):
    """Log masking once turned "app id and password (MICROSOFT_APP_ID ..." into "[password removed]"."""
    from bot.log_masking import mask_text

    with caplog.at_level(logging.WARNING, logger="bot.server.channels.teams.inbound"):
        BotFrameworkInput()
    [warning] = [r.getMessage() for r in caplog.records if "Teams" in r.getMessage()]
    assert "MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD" in warning
    assert mask_text(warning) == warning


def test_the_teams_clients_time_zone_goes_with_the_message():
    from bot.server.channels.teams.inbound import activity_metadata

    activity = Activity(
        type=ActivityTypes.message,
        id="1",
        from_property=ChannelAccount(id="29:u"),
        conversation=ConversationAccount(id="a:1"),
        local_timezone="Europe/Berlin",
    ).serialize()
    assert activity["localTimezone"] == "Europe/Berlin"  # the schema's name for the field we read
    assert activity_metadata(activity)["timezone"] == "Europe/Berlin"
    assert "timezone" not in activity_metadata({**activity, "localTimezone": {"not": "a name"}})


def test_the_schema_check_refuses_what_botbuilder_schema_does_not_know():
    """The fake connector's check (tests/fake_botframework.py activity_model) can fail: unknown fields,
    wrong case or type, values outside the schema's enums, and Rasa's own buttons (title/payload, not
    card actions) are refused; the spec's conversation.tenantId is read, the Python schema's tenantID is not."""
    base = {
        "type": "message",
        "from": BOT,
        "recipient": {"id": "29:u"},
        "conversation": {"id": "a:1", "tenantId": TENANT},
        "text": "hi",
        "textFormat": "markdown",
    }

    def hero(**content: Any) -> Dict[str, Any]:
        return {**base, "attachments": [{"contentType": HERO_CARD, "content": content}]}

    assert activity_model(base).conversation.tenant_id == TENANT
    mention = {"type": "mention", "text": "<at>Bank Feed Helper</at>", "mentioned": BOT}
    read = activity_model({**base, "entities": [mention, {"type": "clientInfo", "locale": "en-US"}]}).entities
    assert isinstance(read[0], Mention) and read[0].mentioned.id == BOT["id"] and read[1].type == "clientInfo"
    refused = {
        "wrong case": {**base, "ReplyToId": "x"},
        "snake case": {**base, "reply_to_id": "x"},
        "unknown field": {**base, "suggestions": []},
        "number as text": {**base, "text": 5},
        "textFormat outside the enum": {**base, "textFormat": "html"},
        "attachmentLayout outside the enum": {**base, "attachmentLayout": "grid"},
        "activity type outside the enum": {**base, "type": "msg"},
        "from not an account": {**base, "from": "someone"},
        "isGroup not a bool": {**base, "conversation": {"id": "a:1", "isGroup": "yes"}},
        "the Python schema's tenantID": {**base, "conversation": {"id": "a:1", "tenantID": TENANT}},
        "card action type outside the enum": hero(buttons=[{"type": "click", "title": "x", "value": "y"}]),
        "Rasa's button": hero(buttons=[{"title": "Yes", "payload": "/affirm"}]),
        "unknown card field": hero(text="x", button=[]),
        "mention with an unknown field": {**base, "entities": [{"type": "mention", "mentioned": BOT, "txt": "<at>x</at>"}]},
        "entity without a type": {**base, "entities": [{"text": "x"}]},
    }
    for name, raw in refused.items():
        with pytest.raises(ValueError):  # a case the check let through fails here, named below
            activity_model(raw)
            pytest.fail(f"accepted: {name}")
