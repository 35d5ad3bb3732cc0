"""Shared fixtures: a local fake bank site, and the real product servers started against it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Optional

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
# in-process servers of the tests (the upload endpoint) upload far more than a person would
os.environ.setdefault("RATE_LIMITS", "off")

from tests import servers  # noqa: E402
from tests.bank_sites import FakeBankSite  # noqa: E402

WIDGET_HOST_ORIGIN = "https://shop.example.com"


@pytest.fixture(scope="session")
def trained_model() -> Path:
    assert servers.MODEL.exists(), f"{servers.MODEL} is missing: run `make model` (make test does it first)"
    return servers.MODEL


@pytest.fixture(scope="session")
def fake_banks():
    """One local web server playing every bank's online-banking site (and the connectivity canary)."""
    with FakeBankSite() as site:
        yield site


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def product_env(fake_banks, stack_dir):
    directory = servers.write_test_directory(stack_dir / "banks.yml", fake_banks.base_url)
    settings = servers.write_test_settings(stack_dir / "bankfeed.yml", fake_banks.url("/canary/healthy"))
    return servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(directory),
            "BANKFEED_SETTINGS": str(settings),
            "HANDOFF_DB_URL": f"sqlite:///{stack_dir / 'handoff.db'}",
            # a site that embeds the widget (tests/test_console_security.py checks CORS against it)
            "CHAT_ALLOWED_ORIGINS": WIDGET_HOST_ORIGIN,
            # the tests' own address plays the TLS proxy (X-Forwarded-For/-Proto); 127.0.0.2 does not
            "TRUSTED_PROXIES": "127.0.0.1",
            "LOGIN_LOCKOUT_SECONDS": "10",
            "LOGIN_ADDRESS_MAX_FAILURES": "8",
            "CONSOLE_SESSION_CHECK_SECONDS": "1",
            "ACCESS_LOG": "true",  # so the token-scrubbing test reads a real access log
        }
    )


class ActionServer:
    """The action server (``rasa run actions``) on a free port; ``restart()`` keeps the port."""

    def __init__(self, env, directory: Path):
        self.env, self.dir = env, directory
        self.port = servers.free_port()
        self.restarts = 0
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ActionServer":
        self.proc = servers.start_action_server(self.port, self.dir / f"actions-{self.restarts}.log", self.env)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()


@pytest.fixture(scope="session")
def action_server(product_env, stack_dir):
    server = ActionServer(product_env, stack_dir).start()
    yield server
    server.stop()


#: Running stacks by base URL, so an agent's console client can find a test's conversation ids.
STACKS = {}


class RasaStack:
    """The Rasa server (REST channel + HTTP API) talking to the action server, with SQLite trackers.

    REST conversation ids are issued by the server (``POST /webhooks/rest/session``): ``send``,
    ``tracker`` and ``messages`` take a test's own name for a conversation (any string) and use the
    id issued for it (``conversation_id(name)``, one per name and stack, kept across restarts)."""

    def __init__(self, env, directory: Path, action_port: int, credentials: Optional[Path] = None):
        self.env, self.dir = env, directory
        self.action_port = action_port
        self.credentials = credentials or servers.ROOT / "credentials.yml"
        self.token = secrets.token_urlsafe(16)
        self.port = servers.free_port()
        self.endpoints = servers.write_endpoints(directory / "endpoints.yml", self.action_port, directory / "tracker.db")
        self.proc = None
        self._ids = {}
        STACKS[self.url] = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RasaStack":
        self.proc = servers.start_rasa_server(
            self.port, self.endpoints, self.token, self.dir / "rasa.log", self.env, credentials=self.credentials
        )
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def conversation_id(self, sender: str) -> str:
        """The server-issued REST id standing for the test's conversation ``sender`` (issued on first use)."""
        import httpx

        from bot.sessions import ISSUED_ID

        if ISSUED_ID.match(sender):
            return sender  # already an issued id
        if sender not in self._ids:
            r = httpx.post(f"{self.url}/webhooks/rest/session", timeout=30)
            r.raise_for_status()
            self._ids[sender] = r.json()["sender"]
        return self._ids[sender]

    def known_id(self, sender: str) -> str:
        """The issued id of a conversation name used with this stack, else ``sender`` itself."""
        return self._ids.get(sender, sender)

    def send(self, sender: str, message: str, **extra):
        import httpx

        body = {"sender": self.conversation_id(sender), "message": message, **extra}
        r = httpx.post(f"{self.url}/webhooks/rest/webhook", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def tracker(self, sender: str):
        import httpx

        r = httpx.get(
            f"{self.url}/conversations/{self.conversation_id(sender)}/tracker",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    def messages(self, sender: str, after: int = 0, after_notice: int = 0):
        """What the REST client collects by polling: {"messages": [...], "notices": [...]}."""
        import httpx

        params = {"sender": self.conversation_id(sender), "after": after, "after_notice": after_notice}
        r = httpx.get(f"{self.url}/webhooks/rest/messages", params=params, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def rasa_stack(product_env, stack_dir, action_server, trained_model):
    stack = RasaStack(product_env, stack_dir, action_server.port).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def handoff_db(product_env):
    """The product database the running stack uses (migrated by the server at start), with the stores
    tests set it up and look at it through: ``.database``, ``.tickets``, ``.agents``."""
    from types import SimpleNamespace

    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore
    from bot.handoff.tickets import TicketStore

    db = Database(product_env["HANDOFF_DB_URL"])
    db.migrate()
    return SimpleNamespace(database=db, tickets=TicketStore(db), agents=AgentStore(db))


class ConsoleClient:
    """An agent using the console's JSON API, as a browser would: the session cookie, and the
    session's CSRF token (from the sign-in answer) on every state-changing request."""

    def __init__(self, base_url: str, username: str, password: str, **client_options):
        import httpx

        self.base_url = base_url
        self.http = httpx.Client(base_url=f"{base_url}/agent/api", timeout=30, **client_options)
        r = self.http.post("/login", json={"username": username, "password": password})
        r.raise_for_status()
        self.agent = r.json()["agent"]
        self.csrf_token = r.json()["csrf_token"]
        self.http.headers["X-CSRF-Token"] = self.csrf_token

    def get(self, path, **kw):
        return self.http.get(path, **kw)

    def post(self, path, json=None):
        return self.http.post(path, json=json or {})

    def ticket_for(self, conversation_id: str):
        """The open ticket of a conversation: its id, or a test's name for it on a ``RasaStack``."""
        stack = STACKS.get(self.base_url)
        conversation_id = stack.known_id(conversation_id) if stack else conversation_id
        tickets = self.get("/tickets", params={"status": "waiting,assigned"}).json()["tickets"]
        return next(t for t in tickets if t["conversation_id"] == conversation_id)


@pytest.fixture(scope="session")
def make_agent(handoff_db, rasa_stack):
    created = {}

    def make(username: str, display_name: str) -> ConsoleClient:
        if username not in created:
            handoff_db.agents.create_agent(username, "correct horse battery", display_name)
            created[username] = True
        return ConsoleClient(rasa_stack.url, username, "correct horse battery")

    return make
