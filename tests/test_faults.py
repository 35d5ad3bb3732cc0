"""Faults: each test checks that nothing the user sent is lost and the user gets a sensible answer."""

from __future__ import annotations

import subprocess
import time
import uuid

import psycopg2

from tests import servers
from tests.conftest import RasaStack
from tests.pg import fresh_pg_database


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def user_texts(stack, sender):
    return [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]


def test_action_server_down_then_restarted_mid_conversation(rasa_stack, action_server):
    s = f"fault-{uuid.uuid4().hex[:8]}"
    rasa_stack.send(s, "error 102 with chase")
    action_server.stop()
    try:
        replies = rasa_stack.send(s, "/deny")
        assert "send your last message again" in texts(replies)  # a sensible answer, not silence
        assert user_texts(rasa_stack, s)[-1] == "/deny"  # and the message is kept
    finally:
        action_server.restart()
    replies = rasa_stack.send(s, "/deny")
    assert "refresh the connection" in texts(replies)  # carries on where it was
    assert rasa_stack.tracker(s)["slots"]["steps_tried"] == ["site_check"]


def test_a_hanging_bank_site_gives_an_honest_answer_in_time(rasa_stack):
    s = f"fault-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    replies = rasa_stack.send(s, "error 102 with capital one")  # its fake site never answers
    assert time.monotonic() - started < 10
    assert "couldn't get a clear answer" in texts(replies)
    assert rasa_stack.tracker(s)["slots"]["check_results"]["Capital One"]["status"] == "unknown"


def _stack_with(product_env, directory, action_port, **endpoints):
    directory.mkdir(exist_ok=True)
    stack = RasaStack(product_env, directory, action_port)
    stack.endpoints = servers.write_endpoints(directory / "endpoints.yml", action_port, directory / "tracker.db", **endpoints)
    return stack.start()


def test_redis_unavailable_the_bot_keeps_answering(product_env, stack_dir, action_server, trained_model):
    closed = servers.free_port()  # nothing listens there: Redis is "down"
    lock = {"type": "bot.server.stores.lock_store.ResilientRedisLockStore", "url": "127.0.0.1", "port": closed, "db": 3}
    stack = _stack_with(product_env, stack_dir / "no-redis", action_server.port, lock_store=lock)
    try:
        s = f"fault-{uuid.uuid4().hex[:8]}"
        assert "Chase" in texts(stack.send(s, "error 102 with chase"))
        assert "refresh the connection" in texts(stack.send(s, "/deny"))
        assert user_texts(stack, s) == ["error 102 with chase", "/deny"]
        assert "Redis lock store unavailable" in stack.proc.tail(400)
    finally:
        stack.stop()


def test_postgresql_restart_loses_nothing(product_env, stack_dir, action_server, trained_model):
    with fresh_pg_database() as url:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        tracker = {
            "type": "bot.server.stores.tracker_store.RedactingSQLTrackerStore",
            "dialect": "postgresql",
            "url": u.host,
            "port": u.port,
            "db": u.database,
            "username": u.username,
        }
        stack = _stack_with(product_env, stack_dir / "pg-restart", action_server.port, tracker_store=tracker)
        try:
            s = f"fault-{uuid.uuid4().hex[:8]}"
            stack.send(s, "error 102 with chase")
            version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=60)
            for _ in range(60):
                try:
                    psycopg2.connect(url, connect_timeout=2).close()
                    break
                except psycopg2.OperationalError:
                    time.sleep(0.5)
            replies = stack.send(s, "/deny")
            assert "refresh the connection" in texts(replies)
            stack.send(s, "/deny")
            with psycopg2.connect(url) as conn, conn.cursor() as cur:
                cur.execute(
                    "select data from events where sender_id = %s and type_name = 'user' order by id", (stack.conversation_id(s),)
                )
                stored = [row[0] for row in cur.fetchall()]
            assert len(stored) == 3 and '"/deny"' in stored[-1]
        finally:
            stack.stop()
