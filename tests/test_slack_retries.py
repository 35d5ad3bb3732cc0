"""Slack retries over the real servers: every delivery is claimed in the product database
(bot/handoff/seen_events.py), so two Rasa servers sharing it answer a message once, a duplicate is
dropped, and a first delivery that was lost (the server killed mid-way) or could not be answered
(the action server down) is answered when Slack retries it. Requests are signed with slack_sdk's
``SignatureVerifier`` (``tests.test_slack_channel.sign``)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from typing import List

import pytest
import yaml
from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import SeenEvent
from tests import servers
from tests.conftest import ActionServer
from tests.fake_slack import FakeSlack, Post
from tests.test_slack_channel import SECRET, SLACK_ENV, SUPPORT, TOKEN, message_event, settle, unique, with_buttons

CLAIM_SECONDS = 4
QUESTION = "getting erorr 102 on my chase account"


class SlackServer:
    """One Rasa server with the Slack channel; restartable on the same port."""

    def __init__(self, env, directory, credentials, endpoints, name):
        self.env, self.dir, self.credentials, self.endpoints, self.name = env, directory, credentials, endpoints, name
        self.port, self.token = servers.free_port(), secrets.token_urlsafe(16)
        self.proc = None
        self.webhook = f"http://127.0.0.1:{self.port}/webhooks/slack/webhook"
        self.starts = 0

    def start(self) -> "SlackServer":
        self.starts += 1
        self.proc = servers.start_rasa_server(
            self.port,
            self.endpoints,
            self.token,
            self.dir / f"{self.name}-{self.starts}.log",
            self.env,
            credentials=self.credentials,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc:
            self.proc.stop(sig)


@pytest.fixture(scope="module")
def fake_slack():
    with FakeSlack(TOKEN) as slack:
        yield slack


@pytest.fixture(autouse=True)
def blocks_are_valid(fake_slack):
    """Every test: nothing the servers posted was refused for its blocks (slack_sdk's Block Kit models)."""
    yield
    assert fake_slack.invalid == [], [i["why"] for i in fake_slack.invalid]


@pytest.fixture(scope="module")
def retry_stack(product_env, fake_slack, trained_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("slack-retries")
    env = {k: v for k, v in product_env.items() if k not in SLACK_ENV}
    env.update(HANDOFF_DB_URL=f"sqlite:///{directory / 'product.db'}", SLACK_EVENT_CLAIM_SECONDS=str(CLAIM_SECONDS))
    credentials = yaml.safe_load((servers.ROOT / "credentials.yml").read_text()) or {}
    credentials["bot.server.channels.slack.SlackInput"] = {
        "slack_token": TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": fake_slack.api_url,
        "slack_channel": SUPPORT,
    }
    credentials_path = directory / "credentials.yml"
    credentials_path.write_text(yaml.safe_dump(credentials, sort_keys=False))
    actions = ActionServer(env, directory).start()
    endpoints = servers.write_endpoints(directory / "endpoints.yml", actions.port, directory / "tracker.db")
    one = SlackServer(env, directory, credentials_path, endpoints, "one").start()
    two = SlackServer(env, directory, credentials_path, endpoints, "two").start()
    store = Database(env["HANDOFF_DB_URL"])
    yield one, two, actions, store
    store.dispose()
    one.stop()
    two.stop()
    actions.stop()


def deliver(server: SlackServer, event, retry: int = 0):
    import httpx

    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **_sign(body)}
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    r = httpx.post(server.webhook, content=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r


def _sign(body: bytes):
    from tests.test_slack_channel import sign

    return sign(body)


def claims(store: Database, dm: str) -> List[tuple]:
    with store.reading() as s:
        return s.execute(select(SeenEvent.state, SeenEvent.attempts).where(SeenEvent.key.like(f"slack:message:%:{dm}:%"))).all()


def answers(posts: List[Post]) -> int:
    """How many times the question was answered: each answer ends with one step that has buttons."""
    return sum(1 for p in posts if p.buttons)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_servers_and_a_duplicate_answer_once(retry_stack, fake_slack):
    one, two, _, store = retry_stack
    user, dm = unique("U"), unique("D")
    event = message_event(user, dm, QUESTION)
    threads = [threading.Thread(target=deliver, args=(server, event, retry)) for server, retry in ((one, 0), (two, 0), (two, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    fake_slack.wait_for_posts(1, dm, until=with_buttons, timeout=60)
    settle(fake_slack, dm, quiet=3)
    deliver(one, event, retry=2)  # a later retry of the answered message: dropped too
    settle(fake_slack, dm, quiet=3)
    assert answers(fake_slack.posts_to(dm)) == 1, [p.text for p in fake_slack.posts_to(dm)]
    assert claims(store, dm) == [("done", 1)]


def test_a_delivery_the_bot_could_not_answer_is_answered_on_retry(retry_stack, fake_slack):
    one, _, actions, store = retry_stack
    user, dm = unique("U"), unique("D")
    event = message_event(user, dm, QUESTION)
    actions.stop()
    try:
        deliver(one, event)
        sorry = fake_slack.wait_for_posts(1, dm, timeout=60)
        # the bot can only apologise ("say that again"): not an answer, the claim is released
        assert "again" in sorry[0].text and not sorry[0].buttons
        wait_for(lambda: claims(store, dm) == [], 10, "the claim of an unanswered delivery was kept")
    finally:
        actions.restarts += 1
        actions.start()
    deliver(one, event, retry=1)
    answered = fake_slack.wait_for_posts(1, dm, after=len(sorry), until=with_buttons, timeout=60)
    assert "102" in " ".join(p.text for p in answered)
    wait_for(lambda: claims(store, dm) == [("done", 1)], 20, f"not marked done: {claims(store, dm)}")


def test_a_delivery_lost_when_the_server_died_is_answered_on_retry(retry_stack, fake_slack):
    one, _, actions, store = retry_stack
    user, dm = unique("U"), unique("D")
    event = message_event(user, dm, QUESTION)
    os.killpg(actions.proc.proc.pid, signal.SIGSTOP)  # the bot's turn hangs in its first action
    try:
        deliver(one, event)
        wait_for(lambda: claims(store, dm) == [("claimed", 1)], 30, "the delivery was not claimed")
        one.stop(signal.SIGKILL)  # the server dies mid-turn: nothing answered, nothing released
    finally:
        os.killpg(actions.proc.proc.pid, signal.SIGCONT)
    assert fake_slack.posts_to(dm) == []
    claimed_at = time.monotonic()
    one.start()
    time.sleep(max(0.0, CLAIM_SECONDS + 1 - (time.monotonic() - claimed_at)))
    deliver(one, event, retry=1)  # Slack retries the message it got no answer for
    answered = fake_slack.wait_for_posts(1, dm, until=with_buttons, timeout=60)
    settle(fake_slack, dm, quiet=2)
    assert answers(fake_slack.posts_to(dm)) == 1 and "102" in " ".join(p.text for p in answered)
    wait_for(lambda: claims(store, dm) == [("done", 2)], 20, f"not marked done: {claims(store, dm)}")
