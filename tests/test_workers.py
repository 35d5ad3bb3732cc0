"""`make run WORKERS=2`: two Sanic worker processes on one port share the Redis lock store and the
SQLite trackers; conversations spread over both stay whole."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections import defaultdict
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml
from rasa.core.lock_store import LockStore
from rasa.core.utils import AvailableEndpoints, number_of_sanic_workers

from bot.server.stores import worker_endpoints
from bot.server.stores.file_lock_store import FileLockStore
from tests import servers
from tests.test_multi_replica import SCRIPT, _check_conversation, message_tag, new_sender

CONVERSATIONS = 24
CONCURRENCY = 12


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


def _worker_pids(parent: int) -> list:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def _drive(url: str, run_id: str, senders: list) -> list:
    failures = []
    semaphore = asyncio.Semaphore(CONCURRENCY)
    # no keep-alive: every request is a new connection, so the kernel spreads them over both workers
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def conversation(n: int) -> None:
            async with semaphore:
                sender = await new_sender(client)
                senders.append(sender)
                for turn, text in enumerate(SCRIPT):
                    body = {"sender": sender, "message": text, "metadata": {"client_message_id": message_tag(sender, turn)}}
                    r = await client.post("/webhooks/rest/webhook", json=body)
                    if r.status_code != 200 or not any(m.get("text") for m in r.json()):
                        failures.append(f"{sender} turn {turn}: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
    return failures


async def test_two_workers_answer_every_message_of_whole_conversations(action_server, product_env, tmp_path, trained_model):
    run_id = secrets.token_hex(3)
    tracker_db = tmp_path / "tracker.db"
    endpoints = servers.write_endpoints(tmp_path / "base.yml", action_server.port, tracker_db)
    doc = worker_endpoints.worker_endpoints(yaml.safe_load(endpoints.read_text()), {})
    doc["lock_store"]["key_prefix"] = f"workers{run_id}"  # this test's locks only
    workers_yml = tmp_path / "endpoints.workers.yml"
    workers_yml.write_text(yaml.safe_dump(doc))
    env = {**product_env, "SANIC_WORKERS": "2"}
    port = servers.free_port()
    rasa = servers.start_rasa_server(port, workers_yml, secrets.token_urlsafe(12), tmp_path / "rasa.log", env)
    try:
        pids = _worker_pids(rasa.proc.pid)
        assert len(pids) == 2, f"expected two Sanic workers under {rasa.proc.pid}, found {pids}"
        before = {pid: _cpu_ticks(pid) for pid in pids}
        senders: list = []
        failures = await _drive(f"http://127.0.0.1:{port}", run_id, senders)
        used = {pid: _cpu_ticks(pid) - before[pid] for pid in pids}
    finally:
        rasa.stop()
    assert not failures, failures[:5]
    assert all(ticks > 0 for ticks in used.values()), f"a worker served nothing: {used}"

    engine = sa.create_engine(f"sqlite:///{tracker_db}", future=True)
    with engine.connect() as conn:
        rows = [
            row
            for row in conn.execute(sa.text("SELECT sender_id, type_name, data FROM events ORDER BY id")).all()
            if row[0] in set(senders)
        ]
    engine.dispose()
    conversations = defaultdict(list)
    for sender, kind, data in rows:
        conversations[sender].append((kind, json.loads(data)))
    assert len(conversations) == CONVERSATIONS
    problems = [p for sender, events in conversations.items() for p in _check_conversation(sender, events)]
    assert not problems, problems[:5]
