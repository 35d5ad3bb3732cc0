"""The production topology under load: scripts/prod-up.sh on real PostgreSQL, Redis and RabbitMQ.

One module-scoped stack (``prod_stack``): fresh PostgreSQL databases for the tracker store and the
hand-off store (random names), a random Redis database, a random RabbitMQ queue and exchange, the
bank sites played by a local ``FakeBankSite``, free ports, everything under a temporary PROD_DIR.
It is torn down with scripts/prod-down.sh and the databases are dropped.

* ``test_conversations_through_nginx_are_whole``: 200 conversations x 10 turns through nginx, 20
  conversations at a time; both replicas (X-Upstream header) and both action servers (nginx's
  log) must have served; then every conversation is read straight from the tracker database: each
  user message exactly once, in order, each answered before the next, none in another conversation
  (every message carries its conversation and turn in its metadata). Every tracker event must also
  have reached the RabbitMQ queue.
* ``test_agent_reply_reaches_a_widget_on_the_other_replica``: a Socket.IO client held by replica 1,
  the agent working on replica 2: the join notice and the reply arrive through Redis pub/sub; the
  console's server-sent events come through nginx unbuffered.

Sizes can be lowered for a quick look: MULTI_REPLICA_CONVERSATIONS, MULTI_REPLICA_CONCURRENCY.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx
import pytest
import sqlalchemy as sa

from tests import servers
from tests.bank_sites import FakeBankSite
from tests.pg import fresh_pg_database

ROOT = servers.ROOT
CONVERSATIONS = int(os.environ.get("MULTI_REPLICA_CONVERSATIONS", "200"))
CONCURRENCY = int(os.environ.get("MULTI_REPLICA_CONCURRENCY", "20"))
LOAD_BUDGET_SECONDS = float(os.environ.get("MULTI_REPLICA_LOAD_BUDGET", "420"))
TURN_TIMEOUT_SECONDS = 90.0
PROD_UP_TIMEOUT_SECONDS = 600
REPLICAS = 2

# A troubleshooting walk-through: diagnosis and bank-site check, refresh, the credential check,
# password changed, edit sign-in, clear the cache in Chrome.
SCRIPT = [
    "getting error 102 on my chase account",
    "/deny",
    "/deny",
    "/affirm",
    "/affirm",
    "/affirm",
    "/affirm",
    "/deny",
    "/deny",
    '/inform{"browser":"chrome"}',
]


# --------------------------------------------------------------------------- the stack
def _port_pair() -> int:
    """A base port p with p and p+1 free on 127.0.0.1 (replica / action-server pairs)."""
    for _ in range(200):
        base = random.randint(20_000, 32_000)  # below the usual ephemeral range (32768-60999)
        socks = []
        try:
            for port in (base, base + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no two consecutive free ports found")


def _redis_db() -> int:
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        databases = int(r.config_get("databases").get("databases", 16))
    except redis.RedisError:
        databases = 16
    finally:
        r.close()
    return random.randint(1, databases - 1)


async def _rabbitmq_queue_count(env: Dict[str, str]) -> int:
    import aio_pika

    conn = await aio_pika.connect(
        host=env["RABBITMQ_HOST"],
        port=int(env["RABBITMQ_PORT"]),
        login=env["RABBITMQ_USERNAME"],
        password=env["RABBITMQ_PASSWORD"],
        timeout=10,
    )
    async with conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(env["RABBITMQ_QUEUE"], passive=True)
        return queue.declaration_result.message_count


async def _rabbitmq_cleanup(env: Dict[str, str]) -> None:
    import aio_pika

    conn = await aio_pika.connect(
        host=env["RABBITMQ_HOST"],
        port=int(env["RABBITMQ_PORT"]),
        login=env["RABBITMQ_USERNAME"],
        password=env["RABBITMQ_PASSWORD"],
        timeout=10,
    )
    async with conn:
        channel = await conn.channel()
        await channel.queue_delete(env["RABBITMQ_QUEUE"])
        await channel.exchange_delete(env["RABBITMQ_EXCHANGE"])


@dataclass
class ProdStack:
    env: Dict[str, str]
    prod_dir: Path
    tracker_url: str
    handoff_url: str
    nginx_url: str
    rasa_ports: List[int]
    action_ports: List[int]
    token: str
    up_seconds: float = 0.0
    facts: Dict[str, object] = field(default_factory=dict)

    def logs(self, lines: int = 25) -> str:
        out = []
        for log in sorted((self.prod_dir / "logs").glob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            out.append(f"----- {log.name}\n{tail}")
        return "\n".join(out)


def _run_script(name: str, env: Dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / name)],
        cwd=ROOT,
        env=env,
        timeout=timeout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def prod_stack(tmp_path_factory, trained_model):
    tmp = tmp_path_factory.mktemp("prod")
    run_id = secrets.token_hex(4)
    with ExitStack() as stack:
        site = stack.enter_context(FakeBankSite())
        tracker_url = stack.enter_context(fresh_pg_database())
        handoff_url = stack.enter_context(fresh_pg_database())
        tracker = sa.engine.make_url(tracker_url)
        nginx_port, actions_lb_port = servers.free_port(), servers.free_port()
        rasa_base, actions_base = _port_pair(), _port_pair()
        while actions_base in (rasa_base - 1, rasa_base, rasa_base + 1):
            actions_base = _port_pair()
        env = servers.base_env(
            {
                "PROD_DIR": str(tmp / "prod"),
                "PY": str(servers.VENV_BIN / "python"),
                "REPLICAS": str(REPLICAS),
                "NGINX_PORT": str(nginx_port),
                "NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
                "RASA_PORT_BASE": str(rasa_base),
                "ACTIONS_PORT_BASE": str(actions_base),
                "ACTIONS_LB_PORT": str(actions_lb_port),
                "RASA_API_TOKEN": secrets.token_urlsafe(24),
                "TRACKER_DB_HOST": tracker.host or "127.0.0.1",
                "TRACKER_DB_PORT": str(tracker.port or 5432),
                "TRACKER_DB_NAME": tracker.database,
                "TRACKER_DB_USER": tracker.username or "postgres",
                "TRACKER_DB_PASSWORD": tracker.password or "",
                "HANDOFF_DB_URL": handoff_url,
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": "6379",
                "REDIS_DB": str(_redis_db()),
                "SOCKETIO_REDIS_CHANNEL": f"bankfeed-test-{run_id}",
                "RABBITMQ_HOST": "127.0.0.1",
                "RABBITMQ_PORT": "5672",
                "RABBITMQ_USERNAME": "guest",
                "RABBITMQ_PASSWORD": "guest",
                "RABBITMQ_QUEUE": f"rasa_events_test_{run_id}",
                "RABBITMQ_EXCHANGE": f"rasa-exchange-test-{run_id}",
                "RABBITMQ_QUEUE_MAX_LENGTH": "0",
                "BANK_DIRECTORY_PATH": str(servers.write_test_directory(tmp / "banks.yml", site.base_url)),
                "BANKFEED_SETTINGS": str(servers.write_test_settings(tmp / "bankfeed.yml", site.url("/canary/healthy"))),
                "START_TIMEOUT": "480",
            }
        )
        env.pop("SOCKETIO_REDIS_URL", None)  # prod-up derives it from REDIS_*
        prod = ProdStack(
            env=env,
            prod_dir=tmp / "prod",
            tracker_url=tracker_url,
            handoff_url=handoff_url,
            nginx_url=f"http://127.0.0.1:{nginx_port}",
            rasa_ports=[rasa_base, rasa_base + 1],
            action_ports=[actions_base, actions_base + 1],
            token=env["RASA_API_TOKEN"],
        )

        def tear_down() -> None:
            down = _run_script("prod-down.sh", env, 120)
            print(down.stdout)
            leftovers = [p.name for p in prod.prod_dir.glob("*.pid")]
            assert not leftovers, f"prod-down left pid files: {leftovers}"
            try:
                asyncio.run(_rabbitmq_cleanup(env))
            except Exception as exc:  # the queue may never have been declared
                print(f"RabbitMQ clean-up: {exc!r}")

        stack.callback(tear_down)  # runs before the databases are dropped
        started = time.monotonic()
        try:
            up = _run_script("prod-up.sh", env, PROD_UP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"prod-up.sh took more than {PROD_UP_TIMEOUT_SECONDS}s:\n{exc.stdout}\n{prod.logs()}")
        prod.up_seconds = time.monotonic() - started
        print(up.stdout)
        if up.returncode != 0:
            pytest.fail(f"prod-up.sh failed ({up.returncode}):\n{up.stdout}\n{prod.logs()}")
        # running it again changes nothing (idempotent): same pids, nginx reloaded
        pids = {p.name: p.read_text() for p in prod.prod_dir.glob("*.pid")}
        again = _run_script("prod-up.sh", env, 300)
        assert again.returncode == 0, again.stdout
        assert {p.name: p.read_text() for p in prod.prod_dir.glob("*.pid")} == pids, again.stdout
        assert sorted(pids) == ["actions-1.pid", "actions-2.pid", "nginx.pid", "rasa-1.pid", "rasa-2.pid"]
        yield prod


# --------------------------------------------------------------------------- helpers
def _tracker_events(url: str, senders: List[str]) -> Dict[str, List[Tuple[str, dict]]]:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT sender_id, type_name, data FROM events WHERE sender_id = ANY(:s) ORDER BY id"),
                {"s": senders},
            ).all()
    finally:
        engine.dispose()
    out: Dict[str, List[Tuple[str, dict]]] = defaultdict(list)
    for sender, type_name, data in rows:
        out[sender].append((type_name, json.loads(data)))
    return out


def _count_rows(url: str) -> int:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    finally:
        engine.dispose()


def _upstreams_in_log(path: Path) -> Counter:
    found = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            m = re.search(r"upstream=(\S+)", line)
            if m and m.group(1) != "-":
                found[m.group(1).split(",")[-1].strip()] += 1
    return found


def message_tag(sender: str, turn: int) -> str:
    """The metadata a test message carries (``client_message_id``, one of the keys a client may send)."""
    return f"{sender}#{turn}"


def turn_of(data: dict) -> Optional[int]:
    tag = (data.get("metadata") or {}).get("client_message_id") or ""
    return int(tag.rsplit("#", 1)[1]) if "#" in tag else None


async def new_sender(client: httpx.AsyncClient) -> str:
    """A server-issued REST sender (``POST /webhooks/rest/session``)."""
    for _attempt in range(5):
        try:
            r = await client.post("/webhooks/rest/session")
            if r.status_code == 201:
                return r.json()["sender"]
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError("no REST session could be started")


def _check_conversation(sender: str, events: List[Tuple[str, dict]]) -> List[str]:
    """What is wrong with one stored conversation (empty if nothing)."""
    problems = []
    users = [(i, data) for i, (kind, data) in enumerate(events) if kind == "user"]
    texts = [data.get("text") for _, data in users]
    if texts != SCRIPT:
        problems.append(f"{sender}: user messages {texts!r}")
    for turn, (_, data) in enumerate(users):
        meta = data.get("metadata") or {}
        if meta.get("client_message_id") != message_tag(sender, turn):
            problems.append(f"{sender}: user event #{turn} carries {meta!r} (another conversation's, or out of order)")
    bounds = [i for i, _ in users] + [len(events)]
    for turn in range(len(users)):
        between = [kind for kind, _ in events[bounds[turn] + 1 : bounds[turn + 1]]]
        if "bot" not in between:
            problems.append(f"{sender}: turn {turn} ({texts[turn]!r}) was not answered")
    return problems


async def _drive(base_url: str, run_id: str) -> dict:
    """CONVERSATIONS conversations of len(SCRIPT) turns, CONCURRENCY conversations at a time."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    upstreams: Counter = Counter()
    latencies: List[float] = []
    failures: List[str] = []
    senders: List[str] = []
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY * 2)

    async with httpx.AsyncClient(base_url=base_url, timeout=TURN_TIMEOUT_SECONDS, limits=limits) as client:

        async def conversation(n: int) -> None:
            async with semaphore:
                sender = await new_sender(client)
                senders.append(sender)
                for turn, text in enumerate(SCRIPT):
                    body = {"sender": sender, "message": text, "metadata": {"client_message_id": message_tag(sender, turn)}}
                    t0 = time.monotonic()
                    try:
                        r = await client.post("/webhooks/rest/webhook", json=body)
                    except httpx.HTTPError as exc:
                        failures.append(f"{sender} turn {turn}: {exc!r}")
                        return
                    latencies.append(time.monotonic() - t0)
                    upstreams[r.headers.get("x-upstream", "?")] += 1
                    if r.status_code != 200:
                        failures.append(f"{sender} turn {turn}: HTTP {r.status_code} {r.text[:200]}")
                        return
                    replies = r.json()
                    if not replies or not any(m.get("text") for m in replies):
                        failures.append(f"{sender} turn {turn} ({text!r}): no reply {replies!r}")

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS))), LOAD_BUDGET_SECONDS)
        duration = time.monotonic() - started
    return {"upstreams": upstreams, "latencies": latencies, "failures": failures, "duration": duration, "senders": senders}


# --------------------------------------------------------------------------- the tests
def test_conversations_through_nginx_are_whole(prod_stack):
    run_id = secrets.token_hex(3)
    result = asyncio.run(_drive(prod_stack.nginx_url, run_id))
    requests = CONVERSATIONS * len(SCRIPT)
    lat = sorted(result["latencies"])
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa: E731
    replicas = {f"127.0.0.1:{port}" for port in prod_stack.rasa_ports}
    actions_seen = _upstreams_in_log(prod_stack.prod_dir / "logs" / "nginx-actions-access.log")
    print(
        f"\nmulti-replica load: prod-up {prod_stack.up_seconds:.0f}s; {CONVERSATIONS} conversations x {len(SCRIPT)} turns "
        f"({requests} requests, {CONCURRENCY} conversations at a time) in {result['duration']:.1f}s = "
        f"{requests / result['duration']:.1f} req/s; latency median {statistics.median(lat) if lat else float('nan'):.3f}s "
        f"p95 {p(0.95):.3f}s max {lat[-1] if lat else float('nan'):.3f}s\n"
        f"  requests per replica (X-Upstream): {dict(result['upstreams'])}\n"
        f"  action calls per action server (nginx log): {dict(actions_seen)}"
    )
    assert not result["failures"], (
        f"{len(result['failures'])} failed turns, e.g.:\n" + "\n".join(result["failures"][:10]) + "\n" + prod_stack.logs()
    )
    assert sum(result["upstreams"].values()) == requests  # message turns (the session requests are not counted)
    assert set(result["upstreams"]) == replicas, f"unexpected upstreams {result['upstreams']}"
    for replica in replicas:
        assert result["upstreams"][replica] >= requests * 0.2, f"{replica} served too few: {result['upstreams']}"
    assert {f"127.0.0.1:{port}" for port in prod_stack.action_ports} <= set(actions_seen), f"action servers used: {actions_seen}"

    # every conversation, straight from the tracker database
    senders = result["senders"]
    assert len(senders) == CONVERSATIONS
    stored = _tracker_events(prod_stack.tracker_url, senders)
    assert set(stored) == set(senders), f"{len(set(senders) - set(stored))} conversations missing from the tracker database"
    problems = [problem for sender in senders for problem in _check_conversation(sender, stored[sender])]
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(problems[:15])

    # and every tracker event reached RabbitMQ (published in the background: wait for the count)
    rows = _count_rows(prod_stack.tracker_url)
    deadline, published = time.monotonic() + 60, -1
    while time.monotonic() < deadline:
        published = asyncio.run(_rabbitmq_queue_count(prod_stack.env))
        if published >= rows:
            break
        time.sleep(1)
    print(f"  tracker events stored: {rows}; messages in RabbitMQ queue {prod_stack.env['RABBITMQ_QUEUE']}: {published}")
    assert published == rows, f"{rows} tracker events, {published} in the RabbitMQ queue"


def test_agent_reply_reaches_a_widget_on_the_other_replica(prod_stack):
    import socketio

    from bot.db.engine import Database
    from bot.handoff.agents import AgentStore

    replica_1, replica_2 = (f"http://127.0.0.1:{port}" for port in prod_stack.rasa_ports)
    session_id = ""  # issued by replica 1 (session_confirm)
    password = secrets.token_urlsafe(12)
    db = Database(prod_stack.handoff_url)
    agent = AgentStore(db).create_agent(f"agent-{secrets.token_hex(3)}", password, "Dana Smith")
    db.dispose()

    async def scenario() -> None:
        received: asyncio.Queue = asyncio.Queue()
        confirmed = asyncio.Event()
        sio = socketio.AsyncClient(reconnection=False)

        def on_confirm(sid: str) -> None:
            nonlocal session_id
            session_id = sid
            confirmed.set()

        sio.on("session_confirm", on_confirm)
        sio.on("bot_uttered", lambda data: received.put_nowait(data))

        async def next_text(containing: str, timeout: float = 30.0) -> dict:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    data = await asyncio.wait_for(received.get(), max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise AssertionError(
                        f"the widget on replica 1 never got a message with {containing!r} within {timeout:.0f}s"
                    ) from None
                if containing in json.dumps(data):
                    return data

        await sio.connect(replica_1, socketio_path="/socket.io", transports=["polling"], wait_timeout=30)
        try:
            await sio.emit("session_request", {})
            await asyncio.wait_for(confirmed.wait(), 15)
            for text in ("error 102 with chase", "/ask_human", "/ask_human"):
                await sio.emit("user_uttered", {"message": text, "session_id": session_id})
                await asyncio.wait_for(received.get(), 60)  # the bot answers on replica 1
            await next_text("queue", 30)

            async with httpx.AsyncClient(timeout=30) as http:
                # the console's live events, through nginx: must arrive at once (no buffering)
                login = await http.post(
                    f"{prod_stack.nginx_url}/agent/api/login", json={"username": agent.username, "password": password}
                )
                login.raise_for_status()
                auth = {"Authorization": f"Bearer {login.json()['token']}"}
                tickets = (await http.get(f"{replica_2}/agent/api/tickets", headers=auth)).json()["tickets"]
                ticket = next(t for t in tickets if t["conversation_id"] == session_id)

                sse_lines: asyncio.Queue = asyncio.Queue()

                async def follow_events() -> None:
                    async with http.stream(
                        "GET", f"{prod_stack.nginx_url}/agent/api/events", headers=auth, timeout=httpx.Timeout(30, read=60)
                    ) as resp:
                        assert resp.status_code == 200
                        async for line in resp.aiter_lines():
                            await sse_lines.put((time.monotonic(), line))

                follower = asyncio.create_task(follow_events())
                await asyncio.sleep(1.5)  # the stream is open and has its cursor

                # the agent works on replica 2; the widget's socket is on replica 1
                claimed_at = time.monotonic()
                claim = await http.post(f"{replica_2}/agent/api/tickets/{ticket['id']}/claim", headers=auth)
                assert claim.status_code == 200, claim.text
                joined = await next_text("has joined the chat", 20)
                assert joined["metadata"]["handoff_event"] == "agent_joined" and "joined" in joined["text"]
                reply_text = f"Hello from replica 2 ({secrets.token_hex(3)})"
                sent = await http.post(
                    f"{replica_2}/agent/api/tickets/{ticket['id']}/messages", headers=auth, json={"text": reply_text}
                )
                assert sent.status_code == 201, sent.text
                await next_text(reply_text, 20)

                while True:
                    at, line = await asyncio.wait_for(sse_lines.get(), 15)
                    if line.startswith("event: ticket_assigned"):
                        break
                follower.cancel()
                assert at - claimed_at < 5, f"the server-sent event took {at - claimed_at:.1f}s through nginx"
        finally:
            await sio.disconnect()

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the deployment files
# (no stack needed; the cluster files can't run here - no Docker engine, no cluster - so they are
# checked for consistency with endpoints.prod.yml, and nginx checks its configurations)
DEPLOY = ROOT / "deploy"
COMPOSE_SERVICE_KEYS = {  # the compose-spec service properties this project may use
    "build",
    "command",
    "configs",
    "container_name",
    "depends_on",
    "deploy",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "healthcheck",
    "image",
    "labels",
    "logging",
    "networks",
    "ports",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "secrets",
    "stop_grace_period",
    "stop_signal",
    "tmpfs",
    "ulimits",
    "user",
    "volumes",
    "working_dir",
}


def _endpoint_variables() -> set:
    lines = (ROOT / "endpoints.prod.yml").read_text().splitlines()
    return {name for line in lines if not line.lstrip().startswith("#") for name in re.findall(r"\$\{([A-Z0-9_]+)\}", line)}


def _nginx_binary() -> str:
    import shutil

    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    return found


def test_endpoints_prod_substitutes_the_environment_and_names_what_is_missing(monkeypatch):
    from rasa.core.utils import read_endpoints_from_path
    from rasa.shared.exceptions import RasaException

    names = _endpoint_variables()
    assert {"ACTION_SERVER_URL", "TRACKER_DB_HOST", "REDIS_HOST", "RABBITMQ_HOST"} <= names
    values = {name: f"value-{name.lower()}" for name in names}
    values.update(TRACKER_DB_PORT="5433", REDIS_PORT="6380", REDIS_DB="3", RABBITMQ_PORT="5673", TRACKER_DB_PASSWORD="")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    endpoints = read_endpoints_from_path(ROOT / "endpoints.prod.yml")
    assert endpoints.action.url == values["ACTION_SERVER_URL"]
    assert endpoints.tracker_store.type == "bot.server.stores.tracker_store.RedactingSQLTrackerStore"
    assert endpoints.tracker_store.url == values["TRACKER_DB_HOST"]
    assert endpoints.tracker_store.kwargs["dialect"] == "postgresql"
    assert endpoints.tracker_store.kwargs["password"] == ""
    assert (endpoints.lock_store.type, endpoints.lock_store.url, endpoints.lock_store.kwargs["db"]) == (
        "bot.server.stores.lock_store.ResilientRedisLockStore",
        values["REDIS_HOST"],
        "3",
    )
    assert endpoints.event_broker.type == "pika"
    assert endpoints.event_broker.kwargs["queues"] == [values["RABBITMQ_QUEUE"]]

    monkeypatch.delenv("REDIS_HOST")
    with pytest.raises(RasaException, match=r"REDIS_HOST"):
        read_endpoints_from_path(ROOT / "endpoints.prod.yml")


def test_every_topology_provides_the_endpoint_variables():
    import yaml

    needed = _endpoint_variables()
    script = (ROOT / "scripts" / "prod-up.sh").read_text()
    exported = set(re.findall(r"^export ([A-Z0-9_]+)=", script, re.M))
    assert needed <= exported, f"prod-up.sh does not export {sorted(needed - exported)}"

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert needed <= set(compose["x-rasa-env"]), f"compose lacks {sorted(needed - set(compose['x-rasa-env']))}"

    config = yaml.safe_load((DEPLOY / "k8s" / "config.yaml").read_text())["data"]
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())["stringData"]
    provided = set(config) | set(secret)
    assert needed <= provided, f"Kubernetes config/secret lack {sorted(needed - provided)}"
    assert "HANDOFF_DB_URL" in secret and "RASA_API_TOKEN" in secret


def test_docker_compose_file_is_consistent():
    import yaml

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "rabbitmq", "migrate", "actions-1", "actions-2", "rasa-1", "rasa-2", "nginx"} <= set(services)
    for name, service in services.items():
        assert set(service) <= COMPOSE_SERVICE_KEYS, f"{name}: unknown keys {set(service) - COMPOSE_SERVICE_KEYS}"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert how["condition"] in ("service_started", "service_healthy", "service_completed_successfully")
            if how["condition"] == "service_healthy":
                check = services[dependency].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{dependency} has no health check"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file()
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    assert services["rasa-1"]["image"] == services["rasa-2"]["image"] == services["migrate"]["image"]
    for dockerfile, base in (("Dockerfile.rasa", "rasa/rasa:3.6.21-full"), ("Dockerfile.actions", "rasa/rasa-sdk:3.6.2")):
        text = (DEPLOY / dockerfile).read_text()
        assert re.search(rf"^FROM {re.escape(base)}$", text, re.M), f"{dockerfile} is not FROM {base}"
        for sources in re.findall(r"^COPY (?:--chown=\S+ )?(.+) \S+$", text, re.M):
            for source in sources.split():
                assert (ROOT / source).exists(), f"{dockerfile} copies missing {source}"


def test_kubernetes_manifests_parse_and_hang_together():
    import yaml

    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text()) if d]
    kinds = Counter(d["kind"] for d in docs)
    assert kinds["Deployment"] == 2 and kinds["Ingress"] >= 1 and kinds["Job"] == 1
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    for doc in docs:
        if doc["kind"] == "Deployment":
            assert doc["spec"]["replicas"] >= 2
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if doc["kind"] == "Ingress":
            for rule in doc["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    assert path["backend"]["service"]["name"] in services
    socketio = next(
        d
        for d in docs
        if d["kind"] == "Ingress"
        and any(p["path"].startswith("/socket.io") for r in d["spec"]["rules"] for p in r["http"]["paths"])
    )
    assert socketio["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"


def test_nginx_configurations_pass_nginx_t(tmp_path):
    import importlib.util
    import shlex

    nginx = _nginx_binary()
    spec = importlib.util.spec_from_file_location("nginx_render", DEPLOY / "nginx" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)

    # compose.conf is what render.py makes of the template with the arguments in its first line
    compose = (DEPLOY / "nginx" / "compose.conf").read_text()
    first = compose.splitlines()[0]
    assert first.startswith(render.HEADER), "compose.conf lost its header line"
    out = tmp_path / "compose-again.conf"
    assert render.main(shlex.split(first[len(render.HEADER) :]) + ["--out", str(out)]) == 0
    assert out.read_text() == compose, "deploy/nginx/compose.conf is stale: re-render it (command in its first line)"

    # nginx -t: the compose file with its service names and container paths mapped to this machine,
    # and a local rendering like prod-up.sh's
    local = compose
    for host in ("rasa-1", "rasa-2", "actions-1", "actions-2"):
        local = local.replace(f"server {host}:", "server 127.0.0.1:")
    local = local.replace("/tmp/", f"{tmp_path}/")
    configs = {"compose": local}
    render.main(
        [
            "--out",
            str(tmp_path / "local.conf"),
            "--listen",
            "127.0.0.1:18080",
            "--actions-listen",
            "127.0.0.1:15050",
            "--rasa",
            "127.0.0.1:15005",
            "127.0.0.1:15006",
            "--actions",
            "127.0.0.1:15055",
            "127.0.0.1:15056",
            "--runtime-dir",
            str(tmp_path),
            "--log-dir",
            str(tmp_path),
        ]
    )
    configs["local"] = (tmp_path / "local.conf").read_text()
    for name, text in configs.items():
        path = tmp_path / f"{name}.conf"
        path.write_text(text)
        result = subprocess.run(
            [nginx, "-t", "-c", str(path), "-p", f"{tmp_path}/", "-e", str(tmp_path / "err.log")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, f"nginx -t {name}:\n{result.stdout}"
        assert "syntax is ok" in result.stdout
        for needle in (
            "location /socket.io/",
            "hash $remote_addr consistent",
            "location = /agent/api/events",
            "proxy_buffering off",
            "X-Upstream",
            "Upgrade $http_upgrade",
        ):
            assert needle in text, f"{name}: {needle!r} missing"


# --------------------------------------------------------------------------- a replica dies under load
def test_a_replica_killed_mid_load_loses_no_message(prod_stack):
    """SIGKILL one replica while conversations run through nginx. A client that gets no answer sends
    the turn again (as the widget does); every message must end up stored, in order, and answered,
    and a message is stored twice only where the client had to resend it."""
    import os
    import signal

    senders: List[str] = []
    resent: Dict[str, set] = defaultdict(set)

    async def drive() -> None:
        semaphore = asyncio.Semaphore(10)
        async with httpx.AsyncClient(base_url=prod_stack.nginx_url, timeout=TURN_TIMEOUT_SECONDS) as client:

            async def conversation(n: int) -> None:
                async with semaphore:
                    sender = await new_sender(client)
                    senders.append(sender)
                    for turn, text in enumerate(SCRIPT):
                        body = {"sender": sender, "message": text, "metadata": {"client_message_id": message_tag(sender, turn)}}
                        for _attempt in range(5):
                            try:
                                r = await client.post("/webhooks/rest/webhook", json=body)
                                if r.status_code == 200 and any(m.get("text") for m in r.json()):
                                    break
                            except httpx.HTTPError:
                                pass
                            resent[sender].add(turn)
                            await asyncio.sleep(0.5)
                        else:
                            raise AssertionError(f"{sender} turn {turn} never answered")

            async def killer() -> None:
                await asyncio.sleep(3)
                pid = int((prod_stack.prod_dir / "rasa-1.pid").read_text())
                os.killpg(os.getpgid(pid), signal.SIGKILL)

            await asyncio.gather(killer(), *(conversation(n) for n in range(30)))

    asyncio.run(drive())
    stored = _tracker_events(prod_stack.tracker_url, senders)
    for sender in senders:
        users = [data for kind, data in stored[sender] if kind == "user"]
        turns = [turn_of(data) for data in users]
        assert sorted(set(turns)) == list(range(len(SCRIPT))), (sender, turns)  # every message is there
        assert turns == sorted(turns), (sender, turns)  # in order
        duplicated = {t for t in turns if turns.count(t) > 1}
        assert duplicated <= resent[sender], (sender, turns)  # twice only where it was resent
        assert all((d.get("metadata") or {}).get("client_message_id", "").startswith(sender + "#") for d in users)
    assert any(resent.values()), "the kill should have interrupted some turns"
