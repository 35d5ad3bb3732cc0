"""Abuse of the servers behind the bot, over the real servers: per-client rate limits on the REST
webhook, socket.io and uploads (a clear "slow down", nothing half-processed), anonymous outage
reports that must not shorten other customers' conversations, and the action server that runs
actions only for the Rasa server (loopback by default; the shared secret Rasa sends)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests import servers
from tests.conftest import RasaStack

TOKEN = secrets.token_urlsafe(24)
RADAR = {
    "min_reports": 5,
    "min_corroborating_failures": 1,
    "min_verified_reports": 3,
    "min_probe_failures": 3,
    "window_minutes": 30,
    "quiet_minutes": 10,
    "recheck_minutes": 5,
    "notice_expiry_hours": 24,
    "notifier_interval_seconds": 5,
}
LIMITS = {
    "RATE_LIMIT_CHAT_PER_SENDER": "3/20seconds",
    "RATE_LIMIT_CHAT_PER_ADDRESS": "200/minute",
    "RATE_LIMIT_UPLOADS_PER_ADDRESS": "3/hour",
    "RATE_LIMIT_UPLOAD_BYTES_PER_ADDRESS": "8000/hour",
    "RATE_LIMIT_OUTAGE_REPORTS_PER_ADDRESS": "1000/hour",  # the radar's own rules are under test here
}
CSV = b"Date,Description,Amount\n" + b"".join(b"01/%02d/2026,Coffee shop %04d,-4.50\n" % (d % 28 + 1, d) for d in range(60))


def start_action_server(port: int, log: Path, env: dict, *args: str) -> servers.Process:
    proc = servers.Process(
        [str(servers.VENV_BIN / "python"), "-m", "bot.server.action_server", "--actions", "actions", "--port", str(port), *args],
        log,
        env,
    )
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    return proc


@pytest.fixture(scope="module")
def abuse_stack(fake_banks, tmp_path_factory, trained_model):
    base = tmp_path_factory.mktemp("abuse")
    env = servers.base_env(
        {
            "BANK_DIRECTORY_PATH": str(servers.write_test_directory(base / "banks.yml", fake_banks.base_url)),
            "BANKFEED_SETTINGS": str(
                servers.write_test_settings(base / "bankfeed.yml", fake_banks.url("/canary/healthy"), radar=RADAR)
            ),
            "HANDOFF_DB_URL": f"sqlite:///{base / 'product.db'}",
            "TRUSTED_PROXIES": "127.0.0.1",
            "ACTION_SERVER_TOKEN": TOKEN,
            **LIMITS,
        }
    )
    env.pop("RATE_LIMITS")
    action_port = servers.free_port()
    actions = start_action_server(action_port, base / "actions.log", env)
    stack = RasaStack(env, base, action_port)
    # the secret comes from the environment, as in endpoints.prod.yml
    endpoints = yaml.safe_load(stack.endpoints.read_text())
    endpoints["action_endpoint"]["headers"] = {"X-Action-Server-Token": "${ACTION_SERVER_TOKEN}"}
    stack.endpoints.write_text(yaml.safe_dump(endpoints).replace("'${ACTION_SERVER_TOKEN}'", "${ACTION_SERVER_TOKEN}"))
    stack.start()
    stack.action_url = f"http://127.0.0.1:{action_port}"
    yield stack
    stack.stop()
    actions.stop()


def texts(replies) -> str:
    return " ".join(r.get("text") or "" for r in replies)


def user_texts(stack, sender):
    return [e.get("text") for e in stack.tracker(sender)["events"] if e["event"] == "user"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- the action server
def escalate_call(sender: str) -> dict:
    return {
        "next_action": "action_escalate",
        "sender_id": sender,
        "version": "3.6.2",
        "domain": {},
        "tracker": {
            "sender_id": sender,
            "slots": {},
            "latest_message": {},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": None,
        },
    }


def test_the_action_server_runs_actions_only_with_the_secret_rasa_sends(abuse_stack):
    from bot.db.engine import Database
    from bot.handoff.tickets import TicketStore

    db = Database(abuse_stack.env["HANDOFF_DB_URL"])
    db.migrate()
    store = TicketStore(db)
    intruder, legit = unique("intruder"), unique("legit")
    for headers in ({}, {"X-Action-Server-Token": "wrong" * 8}, {"X-Action-Server-Token": ""}):
        r = httpx.post(f"{abuse_stack.action_url}/webhook", json=escalate_call(intruder), headers=headers, timeout=10)
        assert r.status_code == 401 and "X-Action-Server-Token" in r.json()["error"]
    assert httpx.get(f"{abuse_stack.action_url}/actions", timeout=10).status_code == 401
    assert httpx.get(f"{abuse_stack.action_url}/health", timeout=10).json() == {"status": "ok"}
    assert store.open_ticket_for(intruder) is None, "an action ran without the secret"

    r = httpx.post(
        f"{abuse_stack.action_url}/webhook", json=escalate_call(legit), headers={"X-Action-Server-Token": TOKEN}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert store.open_ticket_for(legit) is not None
    db.dispose()

    # and Rasa sends it: a conversation that needs the action server is answered
    replies = abuse_stack.send(unique("via-rasa"), "getting error 102 on my chase account")
    assert "102" in texts(replies) and "couldn't finish that just now" not in texts(replies)


def _listening_addresses(port: int):
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # LISTEN
                found.append(address)
    return found


def test_the_default_start_listens_on_loopback_only_and_an_open_one_needs_a_token(tmp_path):
    env = servers.base_env()
    env.pop("ACTION_SERVER_TOKEN", None)
    env.pop("ACTION_SERVER_INTERFACE", None)
    port = servers.free_port()
    proc = start_action_server(port, tmp_path / "default.log", env)
    try:
        assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, and nothing else
    finally:
        proc.stop()

    refused = servers.Process(
        [
            str(servers.VENV_BIN / "python"),
            "-m",
            "bot.server.action_server",
            "--actions",
            "actions",
            "--port",
            str(servers.free_port()),
            "--interface",
            "0.0.0.0",
        ],
        tmp_path / "open.log",
        env,
    )
    assert refused.proc.wait(timeout=60) == 2
    assert "without ACTION_SERVER_TOKEN" in refused.tail()
    refused.stop()


# --------------------------------------------------------------------------- chat rate limits
def test_a_rest_sender_over_the_limit_gets_429_and_can_resend(abuse_stack):
    sender = unique("fast")
    for i in range(3):
        assert abuse_stack.send(sender, f"hello number {i}")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        abuse_stack.send(sender, "hello number 3")
    r = refused.value.response
    assert r.status_code == 429
    wait = int(r.headers["Retry-After"])
    body = r.json()
    assert 1 <= wait <= 20 and body["retry_after"] == wait and "send that message again" in body["error"]
    assert "hello number 3" not in user_texts(abuse_stack, sender), "a refused message was processed"
    # resent after the wait, as a client does: answered. (Once, on a heavily loaded machine, the first
    # resend was refused again; a client that honours the new Retry-After once more gets through.)
    for attempt in range(2):
        time.sleep(wait + 0.5)
        try:
            assert abuse_stack.send(sender, "hello number 3")
            break
        except httpx.HTTPStatusError as again:
            assert again.response.status_code == 429 and attempt == 0, again.response.text
            wait = int(again.response.headers["Retry-After"])
            assert 1 <= wait <= 20
    assert user_texts(abuse_stack, sender).count("hello number 3") == 1


def test_a_widget_sender_over_the_limit_is_told_to_resend(abuse_stack):
    import socketio

    async def scenario():
        received: asyncio.Queue = asyncio.Queue()
        confirmed: asyncio.Queue = asyncio.Queue()
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("session_confirm", lambda data: confirmed.put_nowait(data))
        sio.on("bot_uttered", lambda data: received.put_nowait(data))
        await sio.connect(abuse_stack.url, socketio_path="/socket.io", transports=["polling"], wait_timeout=30)
        try:
            await sio.emit("session_request", {})
            session_id = await asyncio.wait_for(confirmed.get(), 15)
            session_id = session_id.get("session_id") if isinstance(session_id, dict) else session_id
            for i in range(4):
                await sio.emit("user_uttered", {"message": f"widget hello {i}", "session_id": session_id})
            deadline = time.monotonic() + 60
            slow_down = None
            while slow_down is None and time.monotonic() < deadline:
                data = await asyncio.wait_for(received.get(), max(0.1, deadline - time.monotonic()))
                if isinstance(data, dict) and (data.get("metadata") or {}).get("retry_after"):
                    slow_down = data
            return session_id, slow_down
        finally:
            await sio.disconnect()

    session_id, slow_down = asyncio.run(scenario())
    assert slow_down is not None, "no slow-down message"
    # Rasa's message shape: the text alone says it all; our fields under metadata
    assert "faster than I can read" in slow_down["text"] and slow_down["metadata"]["error"] is True
    assert set(slow_down) == {"text", "metadata"}
    time.sleep(3)
    said = user_texts(abuse_stack, session_id)
    assert len(said) == 3 and len(set(said)) == 3, f"exactly the three messages within the limit were processed: {said}"


# --------------------------------------------------------------------------- uploads
def upload(stack, address: str, data: bytes = CSV) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/upload/analyse",
        files={"file": ("export.csv", data, "text/csv")},
        headers={"X-Forwarded-For": address},
        timeout=60,
    )


def test_uploads_per_client_address_count_and_bytes(abuse_stack):
    counted = "203.0.113.10"
    for _ in range(3):
        assert upload(abuse_stack, counted).status_code == 200
    refused = upload(abuse_stack, counted)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60
    assert "try that file again" in refused.json()["error"]
    assert upload(abuse_stack, "203.0.113.11").status_code == 200  # the address from the trusted proxy is what counts

    heavy = "203.0.113.12"  # 8000 bytes an hour (the request bodies, multipart included)
    big = CSV + CSV[CSV.index(b"\n") + 1 :][:2400].rsplit(b"\n", 1)[0] + b"\n"  # ~4.4 KB
    assert 4000 < len(big) < 4800
    assert upload(abuse_stack, heavy, big).status_code == 200
    over = upload(abuse_stack, heavy, big)
    assert over.status_code == 429 and over.json()["limit"] == "upload_bytes_per_address"
    small = CSV[:1200].rsplit(b"\n", 1)[0] + b"\n"
    assert upload(abuse_stack, heavy, small).status_code == 200  # within what is left: the refused one cost nothing


# --------------------------------------------------------------------------- outage radar
def outage_status(stack):
    return [o["bank"] for o in httpx.get(f"{stack.url}/status/outages", timeout=10).json()["active"]]


def test_anonymous_reports_of_a_healthy_bank_do_not_shorten_the_next_conversation(abuse_stack):
    for i in range(5):
        abuse_stack.send(unique(f"anon-chase-{i}"), "getting error 102 on my chase account")
    assert "Chase" not in outage_status(abuse_stack)
    sixth = abuse_stack.send(unique("sixth-chase"), "getting error 102 with chase")
    assert "having an outage" not in texts(sixth)
    assert "Chase" not in outage_status(abuse_stack)


def test_the_same_reports_with_failing_probes_do(abuse_stack, fake_banks):
    fake_banks.set_mode("/monzo/healthy", "error500")
    try:
        for i in range(5):
            abuse_stack.send(unique(f"anon-monzo-{i}"), "monzo bank feed error 102")
        assert "Monzo" in outage_status(abuse_stack)
        sixth = abuse_stack.send(unique("sixth-monzo"), "getting error 102 with monzo")
        assert "having an outage" in texts(sixth)
    finally:
        fake_banks.set_mode("/monzo/healthy", None)


def test_a_rest_client_cannot_claim_a_verified_channel(abuse_stack):
    from sqlalchemy import select

    from bot.db.engine import Database
    from bot.db.models import BankSignal

    sender = unique("claims-slack")
    abuse_stack.send(sender, "getting error 102 with barclays", input_channel="slack", metadata={"client_key": "forged"})
    tracker = abuse_stack.tracker(sender)
    assert tracker["latest_input_channel"] == "rest"
    metadata = [e for e in tracker["events"] if e["event"] == "user"][-1]["metadata"]
    assert metadata["client_key"] != "forged"
    store = Database(abuse_stack.env["HANDOFF_DB_URL"])
    with store.reading() as s:
        rows = s.execute(
            select(BankSignal.verified, BankSignal.client_key).where(
                BankSignal.conversation_id == abuse_stack.conversation_id(sender), BankSignal.kind == "report"
            )
        ).all()
    store.dispose()
    assert rows == [(False, metadata["client_key"])]
