"""Slack end to end: the real Rasa server with the Slack channel, Slack's Web API played by a local fake.

Events API / interactivity requests go to ``/webhooks/slack/webhook`` signed with slack_sdk's own
``SignatureVerifier.generate_signature`` (not an HMAC of our own); what the bot says is read from the
fake's ``chat.postMessage`` records, whose blocks the fake reads with slack_sdk's Block Kit models
(``tests/fake_slack.py``: parsed, validated, round-tripped, or refused as ``invalid_blocks``). Events and
interaction payloads are built in the shape Slack documents (slack_sdk has no models for them); a
click carries the clicked ``ButtonElement``'s own ``action_id``, ``value`` and text object.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any, Dict, List, Optional
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from slack_sdk.models.blocks import ActionsBlock, ContextBlock, MarkdownTextObject, PlainTextObject, SectionBlock
from slack_sdk.signature import SignatureVerifier

from tests import servers
from tests.fake_slack import BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack, Post, block_models

TOKEN = "xoxb-fake-" + secrets.token_hex(8)
SECRET = secrets.token_hex(16)
SUPPORT = "CSUPPORT01"
MAX_FILE = 200_000  # the channel's cap on shared files in these tests
EXPORTS = servers.ROOT / "tests" / "fixtures" / "bank_exports"
SLACK_ENV = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL", "SLACK_SUPPORT_CHANNEL")


# ---------------------------------------------------------------------------- the stack
class SlackStack:
    def __init__(self, url: str, token: str, proc: servers.Process):
        self.url, self.token, self.proc = url, token, proc
        self.webhook = f"{url}/webhooks/slack/webhook"

    def tracker(self, conversation_id: str) -> Dict[str, Any]:
        r = httpx.get(f"{self.url}/conversations/{conversation_id}/tracker", params={"token": self.token}, timeout=30)
        r.raise_for_status()
        return r.json()

    def events(self, conversation_id: str) -> List[Dict[str, Any]]:
        return self.tracker(conversation_id)["events"] or []


@pytest.fixture(scope="module")
def fake_slack():
    with FakeSlack(TOKEN) as slack:
        yield slack


@pytest.fixture(autouse=True)
def blocks_are_valid(fake_slack):
    """Every test: nothing our channel posted was refused for its blocks (slack_sdk's Block Kit models)."""
    yield
    assert fake_slack.invalid == [], [i["why"] for i in fake_slack.invalid]


@pytest.fixture(scope="module")
def slack_stack(product_env, action_server, trained_model, fake_slack, tmp_path_factory):
    directory = tmp_path_factory.mktemp("slack")
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    credentials["bot.server.channels.slack.SlackInput"] = {
        "slack_token": TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": fake_slack.api_url,
        "slack_channel": SUPPORT,
        "max_file_bytes": MAX_FILE,
    }
    credentials_path = directory / "credentials.yml"
    credentials_path.write_text(yaml.safe_dump(credentials, sort_keys=False))
    endpoints = servers.write_endpoints(directory / "endpoints.yml", action_server.port, directory / "tracker.db")
    env = {k: v for k, v in product_env.items() if k not in SLACK_ENV}
    port, token = servers.free_port(), secrets.token_urlsafe(16)
    proc = servers.start_rasa_server(port, endpoints, token, directory / "rasa.log", env, credentials=credentials_path)
    stack = SlackStack(f"http://127.0.0.1:{port}", token, proc)
    yield stack
    proc.stop()


# ---------------------------------------------------------------------------- what Slack sends
def sign(body: bytes, timestamp: Optional[Any] = None, secret: str = SECRET) -> Dict[str, str]:
    """Slack's signature headers for ``body``, made by slack_sdk (``SignatureVerifier.generate_signature``).

    slack_sdk signs text (it decodes the body as UTF-8), so the one body that is not UTF-8, which Slack
    never sends, is signed over its raw bytes (:func:`sign_raw`, checked against slack_sdk in
    ``test_signatures_agree_with_slack_sdk``)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    try:
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    except UnicodeDecodeError:
        return sign_raw(body, ts, secret)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def sign_raw(body: bytes, timestamp: str, secret: str = SECRET) -> Dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def post(
    stack: SlackStack,
    body: bytes,
    content_type: str = "application/json",
    headers: Optional[Dict[str, str]] = None,
    signed: bool = True,
) -> httpx.Response:
    h = {"Content-Type": content_type, **(sign(body) if signed else {}), **(headers or {})}
    return httpx.post(stack.webhook, content=body, headers=h, timeout=10)


_ts_seq = iter(range(100, 10**6))


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts_seq):06d}"


def message_event(
    user: str,
    channel: str,
    text: str,
    *,
    ts: Optional[str] = None,
    thread_ts: Optional[str] = None,
    channel_type: str = "im",
    event_type: str = "message",
) -> Dict[str, Any]:
    event = {
        "type": event_type,
        "user": user,
        "text": text,
        "ts": ts or new_ts(),
        "channel": channel,
        "event_ts": ts,
        "team": TEAM_ID,
    }
    if event_type == "message":
        event["channel_type"] = channel_type
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {
        "token": "verification-token-unused",
        "team_id": TEAM_ID,
        "api_app_id": "AFAKEAPP",
        "type": "event_callback",
        "event": event,
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def send(stack: SlackStack, event: Dict[str, Any], **kw: Any) -> httpx.Response:
    r = post(stack, json.dumps(event).encode(), **kw)
    assert r.status_code == 200, r.text
    return r


def click_body(user: str, message: Post, value: str) -> bytes:
    """A ``block_actions`` payload for a click on the button whose value is ``value``: the action is
    that ``ButtonElement`` of the message's parsed blocks (its action_id, value, text object), in the
    block Slack shows it in (its ``block_id``)."""
    shown = message.as_message()
    for block, model in zip(shown["blocks"], message.models):
        buttons = [e for e in model.elements if e.value == value] if isinstance(model, ActionsBlock) else []
        if buttons:
            button, block_id = buttons[0], block["block_id"]
            break
    else:
        raise AssertionError(f"no button with value {value!r} in {message.blocks}")
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "AFAKEAPP",
        "trigger_id": "1.2.3",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "channel": {"id": message.channel, "name": "directmessage" if message.channel.startswith("D") else "support"},
        "message": shown,
        "response_url": "https://hooks.slack.invalid/actions/1/2/3",
        "actions": [
            {
                "type": button.type,
                "action_id": button.action_id,
                "block_id": block_id,
                "value": button.value,
                "text": PlainTextObject(text=button.text.text, emoji=True).to_dict(),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(stack: SlackStack, user: str, message: Post, value: str) -> httpx.Response:
    r = post(stack, click_body(user, message, value), content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text
    return r


def assert_choice_shown(update: Dict[str, Any], clicked: Post, user: str, chosen: str) -> None:
    """A chat.update of the clicked message: its blocks (slack_sdk models) are the message's blocks as
    Slack showed them, without the buttons, and a context line "<@user> chose *<title>*"."""
    models = block_models(update["blocks"])
    assert not any(isinstance(b, ActionsBlock) for b in models)
    kept = [b for b in clicked.as_message()["blocks"] if b["type"] != "actions"]
    assert [b.to_dict() for b in models[:-1]] == kept
    context = models[-1]
    assert isinstance(context, ContextBlock) and len(context.elements) == 1
    (line,) = context.elements
    assert isinstance(line, MarkdownTextObject) and line.text == f"<@{user}> chose *{chosen}*"


def everything(posts: List[Post]) -> str:
    return " ".join(p.text for p in posts).lower()


def with_buttons(posts: List[Post]) -> bool:
    return any(p.buttons for p in posts)


def user_texts(events: List[Dict[str, Any]]) -> List[str]:
    return [e.get("text") for e in events if e["event"] == "user"]


def settle(fake_slack: FakeSlack, channel: str, thread_ts: Optional[str] = None, quiet: float = 0.8) -> int:
    """Waits until nothing more is posted to the channel/thread for ``quiet`` seconds; the post count."""
    count, since = len(fake_slack.posts_to(channel, thread_ts)), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = len(fake_slack.posts_to(channel, thread_ts))
        if now != count:
            count, since = now, time.monotonic()
    return count


def wait_for_user_message(console: Any, ticket_id: int, text: str, failure: str, timeout: float = 15) -> None:
    """Polls the ticket's transcript in the agent console until the user's ``text`` is there."""
    deadline = time.monotonic() + timeout
    while text not in [m["text"] for m in console.get(f"/tickets/{ticket_id}").json()["messages"] if m["sender"] == "user"]:
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8].upper()


def file_share(user: str, channel: str, files: List[Dict[str, Any]], *, text: str = "", **kw: Any) -> Dict[str, Any]:
    """A ``file_share`` message event as Slack sends it when a user shares files."""
    body = message_event(user, channel, text, **kw)
    body["event"].update({"subtype": "file_share", "files": files, "upload": True})
    return body


# ---------------------------------------------------------------------------- tests
def test_url_verification(slack_stack):
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    ).encode()
    r = post(slack_stack, body)
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert post(slack_stack, body, signed=False).status_code == 401


def test_dm_error_102_buttons_click_and_retry(slack_stack, fake_slack):
    user, dm = unique("U"), unique("D")
    event = message_event(user, dm, "getting erorr 102 on my chase account")
    send(slack_stack, event)
    posts = fake_slack.wait_for_posts(1, dm, until=with_buttons)
    assert all(p.thread_ts is None for p in posts), "a DM is answered in the DM, not in a thread"
    said = everything(posts)
    assert "102" in said and "chase" in said
    assert "site" in said and "check" in said  # the bank-site check was run and reported
    step = next(p for p in posts if p.buttons)
    section, *_, actions = step.models  # slack_sdk's models of what was posted (validated, round-tripped)
    assert isinstance(section, SectionBlock) and isinstance(section.text, PlainTextObject)
    # the section shows the message's text; the message's `text` (notifications) is it, escaped for Slack
    assert section.text.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") == step.text
    assert isinstance(actions, ActionsBlock)
    assert all(isinstance(b.text, PlainTextObject) for b in step.button_elements)  # Slack takes no mrkdwn there
    ids = [b.action_id for b in step.button_elements]
    assert len(set(ids)) == len(ids), "each button of a message has its own action_id"
    values = [v for _, v in step.buttons]
    assert "/deny" in values
    conversation = f"slack-{user}_{dm}"
    slots = slack_stack.tracker(conversation)["slots"]
    assert slots["diagnosis"] == "bank_unavailable" and slots["bank"] == "Chase"
    assert not fake_slack.unknown_calls()

    # a retry of the handled event: acknowledged, not answered again
    settled = settle(fake_slack, dm)
    events_before = len(slack_stack.events(conversation))
    for reason in ("http_timeout", "http_error"):
        r = post(slack_stack, json.dumps(event).encode(), headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": reason})
        assert r.status_code == 200
    send(slack_stack, event)  # the same event delivered again without the header: a duplicate, dropped too
    time.sleep(1.5)
    assert len(fake_slack.posts_to(dm)) == settled, "answered twice"
    assert len(slack_stack.events(conversation)) == events_before

    # clicking "still failing" moves the conversation on
    steps_before = slots.get("steps_tried") or []
    click(slack_stack, user, step, "/deny")
    after_click = fake_slack.wait_for_posts(1, dm, after=settled, until=with_buttons)
    assert after_click and all(p.thread_ts is None for p in after_click)
    events = slack_stack.events(conversation)
    assert user_texts(events).count("getting erorr 102 on my chase account") == 1, "the retry was not processed"
    assert user_texts(events)[-1] == "/deny"
    assert len(events) > events_before
    slots = slack_stack.tracker(conversation)["slots"]
    assert len(slots.get("steps_tried") or []) > len(steps_before) or slots.get("current_step") != step.text
    # the clicked message's buttons are replaced by the choice
    update = next(u for u in fake_slack.updates if u["ts"] == step.ts)
    chosen = next(t for t, v in step.buttons if v == "/deny")
    assert_choice_shown(update, step, user, chosen)


def test_support_channel_thread_is_its_own_conversation(slack_stack, fake_slack):
    user = unique("U")
    root = new_ts()
    send(slack_stack, message_event(user, SUPPORT, "error 102 with bofa since this morning", ts=root, channel_type="channel"))
    posts = fake_slack.wait_for_posts(1, SUPPORT, root, until=with_buttons)
    assert "102" in everything(posts)
    conversation = f"slack-{user}_{SUPPORT}_{root}"
    assert slack_stack.tracker(conversation)["slots"]["bank"] == "Bank of America"

    # a reply in the thread continues the same conversation, answered in the thread
    n = settle(fake_slack, SUPPORT, root)
    send(slack_stack, message_event(user, SUPPORT, "still failing", thread_ts=root, channel_type="channel"))
    fake_slack.wait_for_posts(1, SUPPORT, root, after=n)
    assert user_texts(slack_stack.events(conversation))[-1] == "still failing"

    # a button click in the thread reaches the same conversation
    n = settle(fake_slack, SUPPORT, root)
    step = [p for p in fake_slack.posts_to(SUPPORT, root) if p.buttons][-1]
    value = step.buttons[0][1]
    click(slack_stack, user, step, value)
    fake_slack.wait_for_posts(1, SUPPORT, root, after=n)
    assert user_texts(slack_stack.events(conversation))[-1] == value

    # a mention in the support channel comes as `message` and `app_mention`: answered once
    other_root = new_ts()
    mention = f"<@{BOT_USER_ID}> error 105 on my amex card"
    send(slack_stack, message_event(user, SUPPORT, mention, ts=other_root, channel_type="channel"))
    send(slack_stack, message_event(user, SUPPORT, mention, ts=other_root, event_type="app_mention"))
    fake_slack.wait_for_posts(1, SUPPORT, other_root, until=with_buttons)
    other = f"slack-{user}_{SUPPORT}_{other_root}"
    assert user_texts(slack_stack.events(other)) == ["error 105 on my amex card"]  # once, mention stripped

    # our own posts come back as events: ignored; a channel that is not the support channel: ignored
    own = message_event(BOT_USER_ID, SUPPORT, "bot text", thread_ts=root, channel_type="channel")
    own["event"]["bot_id"] = BOT_ID
    send(slack_stack, own)
    send(slack_stack, message_event(user, "CRANDOM01", "error 102", channel_type="channel"))
    time.sleep(1.0)
    assert not fake_slack.posts_to("CRANDOM01", any_thread=True)


def test_forged_stale_and_unsigned_requests_are_refused(slack_stack, fake_slack):
    user, dm = unique("U"), unique("D")
    send(slack_stack, message_event(user, dm, "hi"))
    fake_slack.wait_for_posts(1, dm)
    conversation = f"slack-{user}_{dm}"
    before_posts = settle(fake_slack, dm)
    before_events = len(slack_stack.events(conversation))

    body = json.dumps(message_event(user, dm, "error 102 with chase")).encode()
    now = int(time.time())
    attempts = {
        "forged": {**sign(body, secret="not-the-secret")},
        "tampered body": sign(body.replace(b"chase", b"wells")),
        "no headers": {},
        "no signature": {"X-Slack-Request-Timestamp": str(now)},
        "no timestamp": {"X-Slack-Signature": sign(body)["X-Slack-Signature"]},
        "stale": sign(body, timestamp=now - 6 * 60),
        "future": sign(body, timestamp=now + 6 * 60),
        "lax timestamp": sign(body, timestamp=f"+{now}"),  # int() would take it; a correct signature over it
        "underscored timestamp": sign(body, timestamp=f"{now:_}"),
    }
    for name, headers in attempts.items():
        r = httpx.post(slack_stack.webhook, content=body, headers={"Content-Type": "application/json", **headers}, timeout=10)
        assert r.status_code == 401, (name, r.status_code, r.text)
    form = urlencode({"payload": json.dumps({"type": "block_actions"})}).encode()
    r = httpx.post(
        slack_stack.webhook,
        content=form,
        timeout=10,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(form, secret="nope")},
    )
    assert r.status_code == 401
    time.sleep(1.5)
    assert len(fake_slack.posts_to(dm)) == before_posts
    assert len(slack_stack.events(conversation)) == before_events


def test_charset_content_type_and_acknowledged_before_the_bot_answers(slack_stack, fake_slack):
    # Capital One's fake site hangs: the bank-site check takes its whole budget (~2 s), yet Slack
    # gets its 200 at once (it retries after 3 s) and the answer is posted afterwards.
    user, dm = unique("U"), unique("D")
    r = send(slack_stack, message_event(user, dm, "error 102 with capital one"), content_type="application/json; charset=utf-8")
    assert r.elapsed.total_seconds() < 1.0
    assert not fake_slack.posts_to(dm), "answered in the background, after the acknowledgement"
    posts = fake_slack.wait_for_posts(1, dm, until=with_buttons)
    assert "102" in everything(posts) and "capital one" in everything(posts)


def test_malformed_bodies_get_4xx(slack_stack, fake_slack):
    dm = unique("D")
    no_user = message_event("U1", dm, "error 102")
    del no_user["event"]["user"]
    bad = {
        json.dumps(no_user).encode(): ("application/json", 400),
        b'{"type": "event_callback", "event": ': ("application/json", 400),
        b'["not", "an", "object"]': ("application/json", 400),
        b"\xff\xfe garbage": ("application/json; charset=utf-8", 400),
        b'{"type": "event_callback"}': ("application/json", 400),
        json.dumps({"type": "event_callback", "event": {"type": "message", "text": "hi", "channel_type": "im"}}).encode(): (
            "application/json",
            400,
        ),
        json.dumps({"type": "url_verification"}).encode(): ("application/json", 400),
        b"payload=%7Bnot-json": ("application/x-www-form-urlencoded", 400),
        b"something=else": ("application/x-www-form-urlencoded", 400),
        urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": "U1"}})}).encode(): (
            "application/x-www-form-urlencoded",
            400,
        ),
        urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "block_actions",
                        "user": {"id": "U1"},
                        "channel": {"id": dm},
                        "actions": [{"type": "static_select", "selected_option": "x"}],
                    }
                )
            }
        ).encode(): ("application/x-www-form-urlencoded", 400),
        json.dumps({**no_user, "event_id": ["x"], "event": {**no_user["event"], "user": "U1", "subtype": ["x"]}}).encode(): (
            "application/json",
            200,
        ),  # an odd subtype: not a user message, ignored
        b"hello": ("text/plain", 415),
        b"": ("application/json", 400),
    }
    for body, (content_type, status) in bad.items():
        r = post(slack_stack, body, content_type=content_type)
        assert r.status_code == status, (body, r.status_code, r.text)
    r = httpx.post(slack_stack.webhook, content=b"{}", headers=sign(b"{}"), timeout=10)  # no Content-Type at all
    assert 400 <= r.status_code < 500
    time.sleep(0.5)
    assert not fake_slack.posts_to(dm, any_thread=True)


@pytest.mark.parametrize("where", ["thread", "dm"])
def test_handoff_over_slack(slack_stack, fake_slack, handoff_db, where):
    """Escalate, then a specialist claims, answers and hands back: every notice and reply is posted
    to the user's support-channel thread or DM, and the bot stays silent in between."""
    user = unique("U")
    if where == "thread":
        channel, root = SUPPORT, new_ts()
        conversation = f"slack-{user}_{SUPPORT}_{root}"

        def says(text: str, first: bool = False) -> None:
            send(
                slack_stack,
                message_event(user, SUPPORT, text, channel_type="channel", **({"ts": root} if first else {"thread_ts": root})),
            )
    else:
        channel, root = unique("D"), None
        conversation = f"slack-{user}_{channel}"

        def says(text: str, first: bool = False) -> None:
            send(slack_stack, message_event(user, channel, text))

    says("error 102 with chase", first=True)
    fake_slack.wait_for_posts(1, channel, root, until=with_buttons)
    n = settle(fake_slack, channel, root)
    # a file whose dates could be either order: its question waits for an answer
    ambiguous = fake_slack.add_file("ambiguous_dates.csv", (EXPORTS / "ambiguous_dates.csv").read_bytes())
    send(
        slack_stack,
        file_share(user, SUPPORT, [ambiguous], thread_ts=root, channel_type="channel")
        if root
        else file_share(user, channel, [ambiguous]),
    )
    (question,) = fake_slack.wait_for_posts(1, channel, root, after=n, until=with_buttons)
    assert "/upload_date_order DMY" in [v for _, v in question.buttons]
    n = settle(fake_slack, channel, root)
    says("I want to talk to a person")
    offer = fake_slack.wait_for_posts(
        1,
        channel,
        root,
        after=n,
        until=lambda ps: any(v == "/ask_human" for p in ps for _, v in p.buttons) or "queue" in everything(ps),
    )
    n = settle(fake_slack, channel, root)
    if "queue" not in everything(offer):
        step = next(p for p in offer if any(v == "/ask_human" for _, v in p.buttons))
        click(slack_stack, user, step, "/ask_human")
        fake_slack.wait_for_posts(1, channel, root, after=n, until=lambda ps: "queue" in everything(ps))
        n = settle(fake_slack, channel, root)
    assert slack_stack.tracker(conversation)["slots"]["handoff_status"] == "waiting"

    # a specialist claims and answers through the console API of this server
    username = "slack-" + uuid.uuid4().hex[:8]
    handoff_db.agents.create_agent(username, "correct horse battery", "Robin")
    with httpx.Client(base_url=f"{slack_stack.url}/agent/api", timeout=30) as console:
        r = console.post("/login", json={"username": username, "password": "correct horse battery"})
        assert r.status_code == 200, r.text
        console.headers["X-CSRF-Token"] = r.json()["csrf_token"]  # the cookie alone changes nothing
        tickets = console.get("/tickets", params={"status": "waiting,assigned"}).json()["tickets"]
        ticket = next(t for t in tickets if t["conversation_id"] == conversation)
        assert ticket["channel"] == "slack"
        assert console.post(f"/tickets/{ticket['id']}/claim", json={}).status_code == 200
        joined = fake_slack.wait_for_posts(1, channel, root, after=n)
        assert "Robin" in joined[0].text and "joined" in joined[0].text
        n += len(joined)

        # the user writes meanwhile: it goes to the specialist, and the bot stays silent
        says("hello? is anyone there")
        wait_for_user_message(console, ticket["id"], "hello? is anyone there", "the user's message did not reach the specialist")
        assert settle(fake_slack, channel, root) == n, "the bot stayed silent"

        # a file shared meanwhile is not checked by the bot: the specialist sees that a file came
        shared = fake_slack.add_file("during_handoff.csv", (EXPORTS / "parentheses_negatives.csv").read_bytes())
        body = (
            file_share(user, SUPPORT, [shared], thread_ts=root, channel_type="channel")
            if root
            else file_share(user, channel, [shared])
        )
        send(slack_stack, body)
        wait_for_user_message(
            console, ticket["id"], "(shared a file: during_handoff.csv)", "the shared file did not reach the specialist"
        )
        assert settle(fake_slack, channel, root) == n, "the bot stayed silent"
        assert fake_slack.downloads_of(shared["id"]) == []

        # nor is the answer to the earlier date-order question: the click goes to the specialist
        uploads = len(fake_slack.uploads)
        click(slack_stack, user, question, "/upload_date_order DMY")
        wait_for_user_message(console, ticket["id"], "/upload_date_order DMY", "the click did not reach the specialist")
        assert settle(fake_slack, channel, root) == n, "the bot stayed silent"
        assert len(fake_slack.uploads) == uploads and len(fake_slack.downloads_of(ambiguous["id"])) == 1

        reply = "Hi, I'm Robin. Chase had an outage this morning & it's fixed <now>."
        r = console.post(f"/tickets/{ticket['id']}/messages", json={"text": reply})
        assert r.status_code == 201, r.text
        answer = fake_slack.wait_for_posts(1, channel, root, after=n)
        assert answer[0].text == "Robin: Hi, I'm Robin. Chase had an outage this morning &amp; it's fixed &lt;now&gt;."
        assert answer[0].params.get("thread_ts") == root
        n += 1

        # handing back: the notice carries its buttons as blocks, in the thread
        assert console.post(f"/tickets/{ticket['id']}/return", json={"note": "outage"}).status_code == 200
        back = fake_slack.wait_for_posts(1, channel, root, after=n)
        assert "/fixed_it" in [v for _, v in back[0].buttons]
    assert slack_stack.tracker(conversation)["slots"]["handoff_status"] == "returned_to_bot"
    assert not fake_slack.unknown_calls()


def test_push_without_metadata_finds_the_thread_or_opens_the_dm(fake_slack, monkeypatch):
    import asyncio

    from bot.server.channels.slack import SlackInput

    channel = SlackInput.from_credentials(
        {"slack_token": TOKEN, "slack_signing_secret": SECRET, "slack_api_url": fake_slack.api_url}
    )
    asyncio.run(channel.push_to_conversation("slack-UPUSH1_CPUSH1_1700000000.000100", {}, "in the thread", None))
    assert [p.text for p in fake_slack.posts_to("CPUSH1", "1700000000.000100")] == ["in the thread"]
    asyncio.run(channel.push_to_conversation("slack-UPUSH2", {}, "opened a DM", [{"title": "OK", "payload": "/affirm"}]))
    (pushed,) = fake_slack.posts_to("DPUSH2")
    assert pushed.text == "opened a DM" and pushed.buttons == [("OK", "/affirm")]
    bad = SlackInput.from_credentials(
        {"slack_token": "xoxb-wrong", "slack_signing_secret": SECRET, "slack_api_url": fake_slack.api_url}
    )
    from slack_sdk.errors import SlackApiError

    with pytest.raises(SlackApiError):  # the hand-off service logs it; the message stays in the tracker
        asyncio.run(bad.push_to_conversation("slack-U1_D1", {"out_channel": "D1"}, "x", None))


def test_not_configured_channel_starts_and_refuses(monkeypatch):
    import asyncio

    from bot.server.channels.slack import DEFAULT_API_URL, SlackInput, verify_signature

    for name in SLACK_ENV:
        monkeypatch.delenv(name, raising=False)
    channel = SlackInput.from_credentials(None)  # an empty section in credentials.yml
    assert not channel.configured and channel.slack_api_url == DEFAULT_API_URL
    assert channel.conversation_granularity == "thread"

    class Unsigned:
        headers: Dict[str, str] = {}
        body = b"{}"

    assert asyncio.run(channel._handle(Unsigned(), None)).status == 503
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    channel = SlackInput.from_credentials({"slack_token": ""})
    assert channel.configured and channel.slack_api_url == "http://127.0.0.1:9/api/"
    assert channel.get_output_channel("D1").client.base_url == "http://127.0.0.1:9/api/"

    body, now = b'{"a":1}', 1_700_000_000
    good = SignatureVerifier("s3cret").generate_signature(timestamp="1700000000", body=body)
    assert verify_signature("s3cret", "1700000000", good, body, now=now)
    assert verify_signature("s3cret", "1700000000", good, body, now=now + 300)
    assert not verify_signature("s3cret", "1700000000", good, body, now=now + 301)
    assert not verify_signature("s3cret", "1700000000", good, body, now=now - 301)
    assert not verify_signature("s3cret", "1_700_000_000", good, body, now=now)
    assert not verify_signature("s3cret", "1700000000", good.upper(), body, now=now)
    assert not verify_signature("s3cret", "1700000000", "v0=é", body, now=now)
    assert not verify_signature("", "1700000000", good, body, now=now)


# ---------------------------------------------------------------------------- shared files
def test_shared_broken_csv_gets_the_report_and_the_converted_csv(slack_stack, fake_slack):
    user, dm = unique("U"), unique("D")
    shared = fake_slack.add_file("parentheses_negatives.csv", (EXPORTS / "parentheses_negatives.csv").read_bytes())
    send(slack_stack, file_share(user, dm, [shared]))
    (report,) = fake_slack.wait_for_posts(1, dm)
    assert "Row 2" in report.text and "parentheses" in report.text and "-45.00" in report.text
    (upload,) = fake_slack.wait_for_uploads(1, dm)
    assert upload.content.startswith(b"Date,Description,Amount")
    assert b"03/14/2024,Office Depot,-45.00" in upload.content and upload.filename.endswith(".csv")
    downloads = fake_slack.downloads_of(shared["id"])
    assert len(downloads) == 1 and downloads[0].authorized  # fetched once, with the bot token
    # the file is not a bot turn (nothing for NLU), and nothing else was called
    assert user_texts(slack_stack.events(f"slack-{user}_{dm}")) == []
    assert not fake_slack.unknown_calls()


def test_shared_file_in_a_support_thread_is_answered_in_the_thread(slack_stack, fake_slack):
    user, root = unique("U"), new_ts()
    shared = fake_slack.add_file("currency_symbols.csv", (EXPORTS / "currency_symbols.csv").read_bytes())
    send(slack_stack, file_share(user, SUPPORT, [shared], text="here is my export", ts=root, channel_type="channel"))
    (report,) = fake_slack.wait_for_posts(1, SUPPORT, root)
    assert "Row 2" in report.text and "currency symbol" in report.text
    (upload,) = fake_slack.wait_for_uploads(1, SUPPORT, root)
    assert upload.content.startswith(b"Date,Description,Amount") and b"-1234.56" in upload.content


def test_too_large_unsupported_and_foreign_files_get_clear_answers(slack_stack, fake_slack):
    user, dm = unique("U"), unique("D")
    # declared too large: refused before anything is downloaded
    big = fake_slack.add_file("year.csv", b"Date,Description,Amount\n", size=50_000_000)
    send(slack_stack, file_share(user, dm, [big]))
    (answer,) = fake_slack.wait_for_posts(1, dm)
    assert "too large" in answer.text and "50.0 MB" in answer.text
    assert fake_slack.downloads_of(big["id"]) == []

    # declared small but larger: the download stops at the cap
    liar = fake_slack.add_file("liar.csv", b"Date,Description,Amount\n" + b"01/02/2024,x,1.00\n" * 20_000, size=100)
    send(slack_stack, file_share(user, dm, [liar]))
    answer = fake_slack.wait_for_posts(1, dm, after=1)[0]
    assert "too large" in answer.text

    # a QIF export: why QuickBooks refuses it, what to download instead, no converted file
    qif = fake_slack.add_file("statement.qif", (EXPORTS / "statement.qif").read_bytes())
    send(slack_stack, file_share(user, dm, [qif]))
    answer = fake_slack.wait_for_posts(1, dm, after=2)[0]
    assert "QIF" in answer.text and "Web Connect" in answer.text

    # hostile bytes: an answer, never a crash
    junk = fake_slack.add_file("export.csv", (EXPORTS / "garbage.bin").read_bytes())
    send(slack_stack, file_share(user, dm, [junk]))
    answer = fake_slack.wait_for_posts(1, dm, after=3)[0]
    assert "isn't readable text" in answer.text or "couldn't" in answer.text.lower()

    # a file URL on another host: the bot token is not sent there (nothing is fetched)
    with FakeSlack(TOKEN) as elsewhere:
        stray = elsewhere.add_file("x.csv", b"Date,Description,Amount\n01/02/2024,x,1.00\n")
        send(slack_stack, file_share(user, dm, [stray]))
        answer = fake_slack.wait_for_posts(1, dm, after=4)[0]
        assert "couldn't download" in answer.text
        assert elsewhere.downloads == [] and elsewhere.calls == []
    time.sleep(0.5)
    assert not [u for u in fake_slack.uploads if u.channel == dm]
    assert slack_stack.proc.proc.poll() is None


def test_ambiguous_dates_ask_with_buttons_and_the_answer_converts(slack_stack, fake_slack):
    user, dm = unique("U"), unique("D")
    shared = fake_slack.add_file("ambiguous_dates.csv", (EXPORTS / "ambiguous_dates.csv").read_bytes())
    send(slack_stack, file_share(user, dm, [shared]))
    (question,) = fake_slack.wait_for_posts(1, dm, until=with_buttons)
    assert "03/04/2024" in question.text
    assert [v for _, v in question.buttons] == ["/upload_date_order MDY", "/upload_date_order DMY"]
    assert not [u for u in fake_slack.uploads if u.channel == dm]
    click(slack_stack, user, question, "/upload_date_order DMY")
    (upload,) = fake_slack.wait_for_uploads(1, dm)
    assert upload.content.startswith(b"Date,Description,Amount\r\n04/03/2024,Coffee shop,-4.50")
    assert len(fake_slack.downloads_of(shared["id"])) == 1  # the kept bytes, not a second download
    assert user_texts(slack_stack.events(f"slack-{user}_{dm}")) == []  # the click was not a bot turn
    update = next(u for u in fake_slack.updates if u["ts"] == question.ts)
    assert_choice_shown(update, question, user, next(t for t, v in question.buttons if v == "/upload_date_order DMY"))


class _FixedClock:
    def __init__(self, now: float):
        self._now = now

    def now(self) -> float:
        return self._now


def test_signatures_agree_with_slack_sdk():
    """Our check accepts what slack_sdk's SignatureVerifier accepts and refuses what it refuses; where they
    differ, ours is the stricter (a timestamp that is not plain digits); the raw-bytes signer of the one
    non-UTF-8 test body is slack_sdk's formula."""
    from bot.server.channels.slack import verify_signature

    now = 1_700_000_000
    body = json.dumps(message_event("U1", "D1", "erorr 102 – chase ✓")).encode()
    sdk = SignatureVerifier(SECRET, clock=_FixedClock(now))
    good = sdk.generate_signature(timestamp=str(now), body=body)
    assert sign_raw(body, str(now))["X-Slack-Signature"] == good
    cases = [
        (str(now), good, body),
        (str(now), good, body + b" "),
        (str(now), good.replace("v0=", "v1="), body),
        (str(now), "v0=" + "0" * 64, body),
        (str(now - 300), sdk.generate_signature(timestamp=str(now - 300), body=body), body),
        (str(now - 301), sdk.generate_signature(timestamp=str(now - 301), body=body), body),
        (str(now + 301), sdk.generate_signature(timestamp=str(now + 301), body=body), body),
        (str(now), SignatureVerifier("other").generate_signature(timestamp=str(now), body=body), body),
    ]
    for timestamp, signature, signed_body in cases:
        expected = sdk.is_valid(body=signed_body, timestamp=timestamp, signature=signature)
        assert verify_signature(SECRET, timestamp, signature, signed_body, now=now) == expected, (timestamp, signature)
    assert sdk.is_valid_request(body, sign(body, timestamp=now))  # our test helper's headers, read by slack_sdk
    for lax in (f"+{now}", f"{now:_}", f" {now}"):  # int() takes these; slack_sdk does, we don't
        signature = sdk.generate_signature(timestamp=lax, body=body)
        assert sdk.is_valid(body=body, timestamp=lax, signature=signature)
        assert not verify_signature(SECRET, lax, signature, body, now=now)


def test_the_block_kit_check_refuses_what_slack_sdk_refuses():
    """The fake's check (tests/fake_slack.py block_models) can fail: slack_sdk's limits, unknown blocks and
    attributes are refused; our cards at their limits (long text, 30 long buttons, the chosen line) pass."""
    from bot.server.channels.slack.cards import button_blocks, chosen_blocks

    def button(**kw: Any) -> Dict[str, Any]:
        return {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x"}, "value": "v", **kw}

    refused = {
        "unknown block type": [{"type": "nonsense"}],
        "unknown attribute": [{"type": "section", "text": {"type": "plain_text", "text": "x"}, "colour": "red"}],
        "section text over 3000": [{"type": "section", "text": {"type": "plain_text", "text": "x" * 3001}}],
        "button text over 75": [{"type": "actions", "elements": [button(text={"type": "plain_text", "text": "x" * 76})]}],
        "button value over 2000": [{"type": "actions", "elements": [button(value="v" * 2001)]}],
        "26 buttons in a block": [{"type": "actions", "elements": [button(action_id=f"a{i}") for i in range(26)]}],
        "not a list": {"type": "section"},
    }
    for name, blocks in refused.items():
        with pytest.raises(ValueError):  # a case the check let through fails here, named below
            block_models(blocks)
            pytest.fail(f"accepted: {name}")

    buttons = [{"title": "t" * 100, "payload": "/p" * 1500} for _ in range(30)]
    models = block_models(button_blocks("x" * 5000, buttons))
    assert [type(m) for m in models] == [SectionBlock, ActionsBlock, ActionsBlock]
    assert [len(m.elements) for m in models[1:]] == [25, 5]
    shown = [{**b, "block_id": f"b{i}"} for i, b in enumerate(button_blocks("pick", buttons[:2]))]
    chosen = block_models(chosen_blocks(shown, "U1", "a <b> & " + "c" * 70))
    assert [type(m) for m in chosen] == [SectionBlock, ContextBlock]
    assert chosen[1].elements[0].text == "<@U1> chose *a &lt;b&gt; &amp; " + "c" * 70 + "*"
