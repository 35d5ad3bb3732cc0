"""`make run` with WORKERS=2: scripts/run.sh as the README starts it, in a copy of the tree, on free
ports: two Rasa processes, each on its own 127.0.0.1 port, behind nginx (scripts/nginx_workers.py).

* 40 widget connections at once through nginx, each long-polling first, then upgrading to a
  websocket (tests/eio_client.py, which never retries): every request of every session reaches the
  process that holds it (first time, no ``400 Invalid session``), every session is confirmed and
  every message answered, and both processes hold sessions.
* a specialist working on one process (console API on its own port) reaches, live, a widget whose
  socket is held by the other (the join notice and the reply: unix-socket pub/sub, no Redis).
* REST conversations spread over both processes stay whole (read back from the tracker database).
* the processes see the real client address (nginx's X-Forwarded-For, from 127.0.0.1 only), and a
  client cannot choose it by sending the header itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List

import aiohttp
import httpx
import pytest
import yaml
from rasa.core.lock_store import LockStore
from rasa.core.utils import AvailableEndpoints, number_of_sanic_workers

from bot import client_address
from bot.server.stores import worker_endpoints
from bot.server.stores.file_lock_store import FileLockStore
from tests import servers
from tests.eio_client import EngineIOClient
from tests.test_multi_replica import SCRIPT, _check_conversation, _port_pair, message_tag, new_sender

CONVERSATIONS = 24
CONCURRENCY = 12
WIDGETS = 40
START_TIMEOUT = 480  # two processes load the model on two shared cores
OTHER_ADDRESS = "127.0.0.2"  # a client that is not on the proxy's address (Linux routes 127/8 to lo)
FIRST_MESSAGE = "getting error 102 on my chase account"


def test_worker_endpoints_add_the_file_lock_store_or_redis_when_asked_and_keep_the_rest(tmp_path, monkeypatch):
    for name in ("LOCK_STORE", "LOCK_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKFEED_VAR_DIR", str(tmp_path / "var"))
    base = tmp_path / "endpoints.yml"
    base.write_text((servers.ROOT / "endpoints.yml").read_text())
    target = tmp_path / "var" / "endpoints.workers.yml"
    assert worker_endpoints.main([str(base), str(target)]) == 0
    written = yaml.safe_load(target.read_text())
    original = yaml.safe_load(base.read_text())
    assert {k: v for k, v in written.items() if k != "lock_store"} == original
    assert written["lock_store"] == {"type": worker_endpoints.FILE_LOCK_STORE_TYPE}  # one machine: no Redis needed
    # what Rasa builds from the file: the file lock store, accepted for two workers
    endpoints = AvailableEndpoints.read_endpoints(str(target))
    store = LockStore.create(endpoints.lock_store)
    assert isinstance(store, FileLockStore) and store.path == tmp_path / "var" / "locks" / "conversations.lock"
    monkeypatch.setenv("SANIC_WORKERS", "2")
    assert number_of_sanic_workers(endpoints.lock_store) == 2
    own_file = str(tmp_path / "elsewhere.lock")
    assert worker_endpoints.lock_store_from_env({"LOCK_FILE": own_file}) == {
        "type": worker_endpoints.FILE_LOCK_STORE_TYPE,
        "path": own_file,
    }
    # REDIS_HOST alone does not switch: Redis only when asked for
    assert worker_endpoints.worker_endpoints(original, {"REDIS_HOST": "redis.internal"})["lock_store"]["type"] == (
        worker_endpoints.FILE_LOCK_STORE_TYPE
    )
    assert worker_endpoints.worker_endpoints(original, {"LOCK_STORE": "redis"})["lock_store"] == {
        "type": worker_endpoints.REDIS_LOCK_STORE_TYPE,
        "url": "127.0.0.1",
        "port": 6379,
        "db": 1,
        "password": None,
    }
    env = {
        "LOCK_STORE": "Redis",
        "REDIS_HOST": "redis.internal",
        "REDIS_PORT": "6380",
        "REDIS_LOCK_DB": "3",
        "REDIS_PASSWORD": "s3cret",
    }
    assert worker_endpoints.worker_endpoints(original, env)["lock_store"] == {
        "type": worker_endpoints.REDIS_LOCK_STORE_TYPE,
        "url": "redis.internal",
        "port": 6380,
        "db": 3,
        "password": "s3cret",
    }
    explicit = dict(original, lock_store={"type": "redis", "url": "elsewhere"})
    assert worker_endpoints.worker_endpoints(explicit, env)["lock_store"] == {"type": "redis", "url": "elsewhere"}
    monkeypatch.setenv("LOCK_STORE", "zookeeper")
    assert worker_endpoints.main([str(base), str(tmp_path / "other.yml")]) == 2  # named, nothing written
    assert not (tmp_path / "other.yml").exists()
    assert worker_endpoints.main([str(base)]) == 2  # usage


# --------------------------------------------------------------------------- the stack, as `make run` starts it
def _copy_tree(dest: Path) -> None:
    """The repository's files (as they are in the working tree) with the trained model and the spaCy
    pipeline linked in, so run.sh's var/ (databases, token, logs, sockets) is this test's own."""
    root = servers.ROOT
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = root / name
        if not source.is_file():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        target.chmod(source.stat().st_mode & 0o777)
    (dest / "models").mkdir(exist_ok=True)
    (dest / "models" / "bankfeed.tar.gz").symlink_to(servers.MODEL.resolve())
    (dest / "var").mkdir(exist_ok=True)
    (dest / "var" / "spacy").symlink_to((root / "var" / "spacy").resolve())


class RunSh:
    def __init__(self, tree: Path, env: Dict[str, str], rasa_port: int, worker_ports: List[int]):
        self.tree, self.env = tree, env
        self.url = f"http://127.0.0.1:{rasa_port}"
        self.worker_urls = [f"http://127.0.0.1:{p}" for p in worker_ports]
        self.log_path = tree / "run.out"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=tree, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Bank-feed assistant is up" in self.output():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"run.sh exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(1)
        raise TimeoutError(f"run.sh not up after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C does: run.sh stops them all
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left behind in the group
        except ProcessLookupError:
            pass
        self._log.close()

    def tracker_events(self, senders) -> Dict[str, list]:
        conn = sqlite3.connect(self.tree / "var" / "tracker.db")
        try:
            rows = conn.execute("SELECT sender_id, type_name, data FROM events ORDER BY id").fetchall()
        finally:
            conn.close()
        wanted = set(senders)
        out: Dict[str, list] = defaultdict(list)
        for sender, kind, data in rows:
            if sender in wanted:
                out[sender].append((kind, json.loads(data)))
        return out


@pytest.fixture(scope="module")
def workers(tmp_path_factory, product_env, trained_model):
    tree = tmp_path_factory.mktemp("make-run")
    _copy_tree(tree)
    rasa_port, actions_port, worker_base = servers.free_port(), servers.free_port(), _port_pair()
    env = {k: v for k, v in product_env.items() if k not in ("HANDOFF_DB_URL", "CHAT_ALLOWED_ORIGINS", "TRUSTED_PROXIES")}
    env.update(
        {
            "PY": str(servers.VENV_BIN / "python"),
            "WORKERS": "2",
            "RASA_PORT": str(rasa_port),
            "ACTIONS_PORT": str(actions_port),
            "WORKER_PORT_BASE": str(worker_base),
        }
    )
    for name in (
        "RASA_API_TOKEN",
        "RASA_API_TOKEN_FILE",
        "SOCKETIO_REDIS_URL",
        "SOCKETIO_PEERS_DIR",
        "WORKER_INDEX",
        "WORKER_COUNT",
    ):
        env.pop(name, None)
    stack = RunSh(tree, env, rasa_port, [worker_base, worker_base + 1])
    try:
        stack.wait_up(START_TIMEOUT)
        yield stack
    finally:
        stack.stop()
        print(stack.tail(15))


def _process_of(url: str, sid: str) -> int:
    return int(sid.split(".", 1)[0])


# --------------------------------------------------------------------------- the tests
def test_make_run_starts_two_processes_behind_nginx(workers):
    out = workers.output()
    assert "Bank-feed assistant is up (2 Rasa processes behind nginx)" in out, workers.tail()
    for url in workers.worker_urls:
        assert url in out
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    assert httpx.get(f"{workers.url}/nginx-health", timeout=10).text == "ok\n"
    conf = (workers.tree / "var" / "nginx" / "nginx.conf").read_text()
    assert "map $arg_sid $bankfeed_socketio" in conf and "proxy_pass http://$bankfeed_socketio;" in conf
    assert sorted(p.name for p in (workers.tree / "var" / "run").glob("*.sock")) == ["socketio-0.sock", "socketio-1.sock"]


async def _widget(http: aiohttp.ClientSession, url: str, timeout: float = 60.0) -> EngineIOClient:
    """A widget connection: polling handshake, session_request / session_confirm, websocket upgrade."""
    client = EngineIOClient(http, url)
    await client.connect(timeout)
    await client.emit("session_request", {})
    client.session_id = await client.next_event("session_confirm", timeout)
    await client.upgrade(timeout)
    return client


async def test_every_widget_session_sticks_to_its_process(workers):
    results: List[dict] = []
    failures: List[str] = []
    connector = aiohttp.TCPConnector(limit=0, local_addr=(OTHER_ADDRESS, 0), force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(n: int) -> None:
            client = None
            try:
                started = time.monotonic()
                client = await _widget(http, workers.url)
                connected = time.monotonic()
                await client.emit("user_uttered", {"session_id": client.session_id, "message": FIRST_MESSAGE})
                reply = await client.next_event("bot_uttered", 180)
                client.check_poller()
                results.append(
                    {
                        "sid": client.sid,
                        "session": client.session_id,
                        "reply": reply,
                        "requests": list(client.requests),
                        "connect_s": connected - started,
                        "reply_s": time.monotonic() - connected,
                    }
                )
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(f"widget {n}: {exc!r} requests={client.requests if client else []}")
            finally:
                if client is not None:
                    await client.close()

        await asyncio.gather(*(one(n) for n in range(WIDGETS)))
    assert not failures, f"{len(failures)} of {WIDGETS} widgets failed:\n" + "\n".join(failures[:10]) + "\n" + workers.tail()
    assert len(results) == WIDGETS
    for r in results:
        assert r["requests"][0] == ("handshake", 200)
        assert all(status in (200, 101) for _, status in r["requests"]), r["requests"]
        assert ("websocket", 101) in r["requests"]
        assert r["reply"].get("text"), r["reply"]
    by_process = Counter(_process_of(workers.url, r["sid"]) for r in results)
    connect, reply = sorted(r["connect_s"] for r in results), sorted(r["reply_s"] for r in results)
    print(
        f"\nwidget sessions per process: {dict(by_process)}; {sum(len(r['requests']) for r in results)} requests, "
        f"all answered first time; connect+confirm+upgrade median {connect[len(connect) // 2]:.2f}s max {connect[-1]:.2f}s; "
        f"first reply median {reply[len(reply) // 2]:.2f}s max {reply[-1]:.2f}s ({WIDGETS} at once)"
    )
    assert set(by_process) == {0, 1}, f"one process held every session: {by_process}"
    assert len({r["session"] for r in results}) == WIDGETS

    # the processes saw the widgets' own address (nginx's X-Forwarded-For), not the proxy's
    events = workers.tracker_events([r["session"] for r in results])
    keys = {
        (data.get("metadata") or {}).get("client_key")
        for evs in events.values()
        for kind, data in evs
        if kind == "user" and data.get("text") == FIRST_MESSAGE
    }
    assert keys == {client_address.client_key(OTHER_ADDRESS)}, keys


async def test_a_specialist_on_one_process_reaches_a_widget_on_the_other(workers):
    username, password = f"agent-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    created = subprocess.run(
        [str(servers.VENV_BIN / "python"), "-m", "bot.handoff.cli", "create-agent", username, "--display-name", "Dana Smith"],
        cwd=workers.tree, env={**workers.env, "AGENT_PASSWORD": password}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    async with aiohttp.ClientSession() as http:
        widget = await _widget(http, workers.url)
        try:
            held_by = _process_of(workers.url, widget.sid)
            other = workers.worker_urls[1 - held_by]  # the specialist works here
            for text in ("error 102 with chase", "/ask_human", "/ask_human"):
                await widget.emit("user_uttered", {"session_id": widget.session_id, "message": text})
                await widget.next_event("bot_uttered", 120)
            await widget.next_event("bot_uttered", 60, containing="queue")

            async with httpx.AsyncClient(base_url=other, timeout=30) as console:
                login = await console.post("/agent/api/login", json={"username": username, "password": password})
                assert login.status_code == 200, login.text
                auth = {"Authorization": f"Bearer {login.json()['token']}"}
                tickets = (await console.get("/agent/api/tickets", headers=auth)).json()["tickets"]
                ticket = next(t for t in tickets if t["conversation_id"] == widget.session_id)
                claim = await console.post(f"/agent/api/tickets/{ticket['id']}/claim", headers=auth)
                assert claim.status_code == 200, claim.text
                joined = await widget.next_event("bot_uttered", 20, containing="has joined the chat")
                assert "Dana Smith" in json.dumps(joined)
                reply_text = f"Hello from process {1 - held_by} ({secrets.token_hex(3)})"
                sent_at = time.monotonic()
                sent = await console.post(f"/agent/api/tickets/{ticket['id']}/messages", headers=auth, json={"text": reply_text})
                assert sent.status_code == 201, sent.text
                await widget.next_event("bot_uttered", 20, containing=reply_text)
                print(
                    f"\nspecialist reply from process {1 - held_by} reached the widget on {held_by} in {time.monotonic() - sent_at:.3f}s (POST sent to event received)"
                )
            widget.check_poller()
        finally:
            await widget.close()


async def test_rest_conversations_over_both_processes_stay_whole(workers):
    senders: List[str] = []
    failures: List[str] = []
    upstreams: Counter = Counter()
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=workers.url, timeout=120) as client:

        async def conversation(n: int) -> None:
            async with semaphore:
                sender = await new_sender(client)
                senders.append(sender)
                for turn, text in enumerate(SCRIPT):
                    body = {"sender": sender, "message": text, "metadata": {"client_message_id": message_tag(sender, turn)}}
                    r = await client.post("/webhooks/rest/webhook", json=body)
                    upstreams[r.headers.get("x-upstream", "?")] += 1
                    if r.status_code != 200 or not any(m.get("text") for m in r.json()):
                        failures.append(f"{sender} turn {turn}: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
    assert not failures, failures[:5]
    print(f"\nREST turns per process (X-Upstream): {dict(upstreams)}")
    assert set(upstreams) == {u.replace("http://", "") for u in workers.worker_urls}, upstreams
    conversations = workers.tracker_events(senders)
    assert len(conversations) == CONVERSATIONS
    problems = [p for sender, events in conversations.items() for p in _check_conversation(sender, events)]
    assert not problems, problems[:5]


def test_the_client_address_is_nginx_s_word_not_the_client_s(workers):
    forged = "203.0.113.9"
    seen = {}
    for local, headers in ((None, {"X-Forwarded-For": forged}), (OTHER_ADDRESS, {"X-Forwarded-For": forged})):
        transport = httpx.HTTPTransport(local_address=local) if local else None
        with httpx.Client(base_url=workers.url, timeout=120, transport=transport) as client:
            sender = client.post("/webhooks/rest/session", headers=headers).json()["sender"]
            r = client.post("/webhooks/rest/webhook", headers=headers, json={"sender": sender, "message": FIRST_MESSAGE})
            assert r.status_code == 200, r.text
        seen[local or "127.0.0.1"] = sender
    events = workers.tracker_events(list(seen.values()))
    for address, sender in seen.items():
        keys = {(d.get("metadata") or {}).get("client_key") for kind, d in events[sender] if kind == "user"}
        assert keys == {client_address.client_key(address)}, (address, keys)
        assert client_address.client_key(forged) not in keys


def _nginx_workers_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nginx_workers", servers.ROOT / "scripts" / "nginx_workers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_nginx_configuration_routes_by_session_prefix_and_takes_only_plain_values(tmp_path):
    import shutil

    render = _nginx_workers_module().render
    workers = ["127.0.0.1:15001", "127.0.0.1:15002", "127.0.0.1:15003"]
    text = render("5005", workers, str(tmp_path), str(tmp_path))
    for i, address in enumerate(workers):
        assert f'"~^{i}(\\.|%2[Ee])"  bankfeed_worker_{i};' in text
        assert f"upstream bankfeed_worker_{i} {{\n        server {address} " in text
    # every header at server level, none in a location (a location's own would drop them all)
    server_block = text[text.index("    server {") :]
    head, *locations = server_block.split("\n        location ")
    assert "X-Forwarded-For $remote_addr" in head and len(locations) == 4
    assert not any("proxy_set_header" in loc for loc in locations)
    for bad in (
        dict(listen="5005; include /etc/passwd", workers=workers),
        dict(listen="5005", workers=["127.0.0.1:1 down; server evil:80"]),
        dict(listen="5005", workers=[]),
    ):
        with pytest.raises(ValueError):
            render(bad["listen"], bad["workers"], str(tmp_path), str(tmp_path))
    with pytest.raises(ValueError):
        render("5005", workers, "relative/dir", str(tmp_path))
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", f"{tmp_path}/", "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


async def test_without_nginx_make_run_starts_one_process(tmp_path, product_env, trained_model):
    _copy_tree(tmp_path)
    rasa_port, actions_port = servers.free_port(), servers.free_port()
    env = {k: v for k, v in product_env.items() if k not in ("HANDOFF_DB_URL", "CHAT_ALLOWED_ORIGINS")}
    env.update(
        {
            "PY": str(servers.VENV_BIN / "python"),
            "WORKERS": "2",
            "NGINX": str(tmp_path / "no-such-nginx"),
            "RASA_PORT": str(rasa_port),
            "ACTIONS_PORT": str(actions_port),
        }
    )
    for name in ("RASA_API_TOKEN", "RASA_API_TOKEN_FILE", "RATE_LIMIT_STORAGE_URL", "WORKER_INDEX", "WORKER_COUNT"):
        env.pop(name, None)
    stack = RunSh(tmp_path, env, rasa_port, [])
    try:
        stack.wait_up(START_TIMEOUT)
        out = stack.output()
        assert "nginx is not installed (apt-get install -y nginx): starting one Rasa process instead of 2." in out
        assert "Bank-feed assistant is up (one Rasa process)" in out
        assert not (tmp_path / "var" / "nginx").exists() and not (tmp_path / "var" / "endpoints.workers.yml").exists()
        async with aiohttp.ClientSession() as http:
            widget = await _widget(http, stack.url)
            try:
                assert "." not in widget.sid  # no process index: nothing routes on it
                await widget.emit("user_uttered", {"session_id": widget.session_id, "message": FIRST_MESSAGE})
                assert (await widget.next_event("bot_uttered", 120)).get("text")
            finally:
                await widget.close()
    finally:
        stack.stop()


# socket.io-client's own default, which third-party widgets keep: long-polling first, then the upgrade
# (our widget opens a websocket straight away, which needs no routing)
POLLING_FIRST = """
(() => {
  let real;
  Object.defineProperty(window, "io", {
    configurable: true,
    get() { return real; },
    set(io) {
      const pollingFirst = (url, options) => io(url, { ...options, transports: ["polling", "websocket"], upgrade: true });
      real = Object.assign(pollingFirst, io);
    },
  });
})();
"""


def test_a_polling_first_widget_in_chromium_through_nginx(workers):
    """Debian's Chromium runs the widget with its vendored socket.io-client set to poll first (as
    socket.io-client does by default): every polling request, each naming its session, and the
    websocket upgrade reach the process that holds the session (none refused), and the conversation
    goes on across reloads, whichever process each new session lands on."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is needed for the browser test")
    from playwright.sync_api import expect

    from tests.browser import chromium
    from tests.test_widget_browser import REPLY_TIMEOUT, Widget

    refused: List[tuple] = []
    polled: List[str] = []
    upgraded: List[str] = []

    def seen(response) -> None:
        if "/socket.io/" in response.url:
            polled.append(response.url)
            if response.status >= 400:
                refused.append((response.status, response.url))

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US").new_page()
        page.add_init_script(POLLING_FIRST)
        page.on("response", seen)
        page.on("websocket", lambda ws: upgraded.append(ws.url))
        widget = Widget(page)
        assert page.goto(f"{workers.url}/chat/").ok
        widget.launcher.click()
        expect(widget.status).to_be_hidden(timeout=30_000)
        session_id = widget.session_id()
        widget.say("getting error 102 with chase")
        expect(widget.log).to_contain_text("answering normally", timeout=REPLY_TIMEOUT)
        for n in range(3):
            page.reload()
            if not widget.panel.is_visible():
                widget.launcher.click()
            expect(widget.status).to_be_hidden(timeout=30_000)
            assert widget.session_id() == session_id
            expect(widget.log).to_contain_text("getting error 102 with chase", timeout=REPLY_TIMEOUT)  # history
            before = sum(1 for kind, _ in widget.rows() if kind == "bot")
            widget.say(f"is the chase site down right now? ({n})")
            deadline = time.monotonic() + REPLY_TIMEOUT / 1000
            while sum(1 for kind, _ in widget.rows() if kind == "bot") <= before:
                assert time.monotonic() < deadline, f"no reply after reload {n}: {widget.rows()[-3:]}"
                time.sleep(0.2)
    assert not refused, refused
    sid = re.compile(r"[?&]sid=([^&]+)")
    sessions = {m.group(1) for m in map(sid.search, polled) if m}
    assert len(sessions) >= 4, polled  # one per page load, each polling first
    assert all(re.match(r"^[01]\.", s) for s in sessions), sessions
    assert {m.group(1) for m in map(sid.search, upgraded) if m} == sessions, (upgraded, sessions)  # each upgraded
    print(
        f"\nthe browser's {len(polled)} polling requests and {len(upgraded)} upgrades of {len(sessions)} sessions "
        f"all answered; sessions per process: {dict(Counter(s[0] for s in sessions))}"
    )
