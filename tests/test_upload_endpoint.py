"""The upload channel's HTTP endpoint (``bot.server.channels.upload``), served by a small Sanic app on
127.0.0.1 in a background thread (no Rasa server needed) and called with httpx.

Converted files go to the product database (a ``Database`` on a temp SQLite file, on
``app.ctx.services`` the way the Rasa server's ``Services.install`` leaves it), on a fake clock, so
expiry is tested without waiting an hour. A second Sanic app on the same database plays another
server replica.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from rasa.core.channels.channel import InputChannel
from sanic import Sanic

from bot import sessions
from bot.db.engine import Database
from bot.db.models import UploadFile
from bot.server.channels.upload import FileStore, UploadInput
from bot.upload.files import UploadFiles

CORPUS = Path(__file__).parent / "fixtures" / "bank_exports"
CLEAN = (CORPUS / "clean_3col.csv").read_bytes()
MAX_FILE = 200_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class ServerThread:
    """A Sanic app on its own event loop in a daemon thread."""

    def __init__(self, app: Sanic):
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.ready = threading.Event()
        self.loop = None
        self.server = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.server = await self.app.create_server(
                host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False
            )
            self.stopped = asyncio.Event()
            await self.server.startup()
            await self.server.before_start()
            await self.server.start_serving()
            await self.server.after_start()
            self.ready.set()
            await self.stopped.wait()

        try:
            self.loop.run_until_complete(main())
        except Exception as exc:  # surfaced by start()
            self.error = exc
            self.ready.set()

    def start(self) -> "ServerThread":
        self.thread.start()
        assert self.ready.wait(20), "the test server did not start"
        assert self.error is None, self.error
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.server.before_stop()
            self.server.close()
            await self.server.wait_closed()
            await self.server.after_stop()
            self.stopped.set()

        if self.loop and self.server:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.thread.join(10)


@pytest.fixture(scope="module", autouse=True)
def several_apps_in_one_process():
    """Sanic 21.12 rewrites some of its methods ("touch-up") when an app starts; outside test mode a
    second app in the same process fails on the rewritten source. Test mode keeps the originals."""
    before = Sanic.test_mode
    Sanic.test_mode = True
    yield
    Sanic.test_mode = before


class UtcClock:
    """The product database's clock (aware UTC datetimes), moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def clock():
    return UtcClock()


@pytest.fixture(scope="module")
def product_db(tmp_path_factory, clock):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('upload') / 'product.db'}", clock=clock)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def channel():
    return UploadInput(max_file_bytes=MAX_FILE)


def start_app(channel, database=None):
    app = Sanic(f"upload_test_{secrets.token_hex(4)}")
    if database is not None:
        app.ctx.services = SimpleNamespace(database=database)  # the upload routes use only the database of the services

    async def on_new_message(message):  # the upload endpoint never talks to the bot
        raise AssertionError("not expected")

    app.blueprint(channel.blueprint(on_new_message), url_prefix=channel.url_prefix())
    return ServerThread(app).start()


@pytest.fixture(scope="module")
def server(channel, product_db):
    srv = start_app(channel, product_db)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def replica(product_db):
    """Another server process on the same product database (its own channel, its own memory)."""
    srv = start_app(UploadInput(max_file_bytes=MAX_FILE), product_db)
    yield srv
    srv.stop()


def rows(product_db):
    columns = [c for c in UploadFile.__table__.columns]
    with product_db.reading() as s:
        return {r.token_hash: r for r in s.execute(sa.select(*columns)).all()}


@pytest.fixture
def client(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as c:
        yield c


def post_file(client, data=CLEAN, filename="export.csv", **fields):
    return client.post(
        "/upload/analyse", files={"file": (filename, data, "text/csv")}, data={k: v for k, v in fields.items() if v is not None}
    )


# ---------------------------------------------------------------------------- channel basics
def test_channel_name_and_prefix():
    channel = UploadInput.from_credentials(None)
    assert channel.name() == "file_upload"
    assert channel.url_prefix() == "/upload"
    from urllib.parse import urljoin

    assert urljoin("/webhooks/", channel.url_prefix()) == "/upload"  # how Rasa mounts it
    assert UploadInput.from_credentials({"ttl_seconds": 99999}).store.ttl == 3600  # never over an hour
    assert UploadInput.from_credentials({"ttl_seconds": 600, "cors_origin": "https://shop.example"}).store.ttl == 600
    assert isinstance(channel, InputChannel)


# ---------------------------------------------------------------------------- happy paths
def test_files_are_filed_only_under_a_conversation_the_server_issued(client, product_db):
    """A made-up, another channel's or a tampered conversation id cannot have files filed under it."""
    issued = sessions.SessionIds(sessions.load_secret()).issue(sessions.REST)
    for sender in ("customer-42", "slack-U1_D1", "teams-29:abc", issued[:-1] + ("A" if issued[-1] != "A" else "B")):
        r = post_file(client, CLEAN, "clean.csv", sender=sender)
        assert r.status_code == 403 and "issued" in r.json()["error"], sender
    assert rows(product_db) == {}
    assert post_file(client, CLEAN, "clean.csv").status_code == 200  # no conversation named: fine


def test_multipart_upload_and_one_time_download(client):
    sender = sessions.SessionIds(sessions.load_secret()).issue(sessions.REST)
    r = post_file(
        client,
        (CORPUS / "parentheses_negatives.csv").read_bytes(),
        "checking.csv",
        date_order="MDY",
        last_booked="2024-03-14",
        region="US",
        sender=sender,
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    body = r.json()
    assert body["ok"] is False and body["file_type"] == "csv" and body["sender"] == sender
    assert [p["row"] for p in body["problems"] if p["code"] == "parentheses"] == [2, 4, 5]
    assert body["message"].startswith("QuickBooks would reject checking.csv")
    kinds = {f["kind"]: f for f in body["converted"]}
    assert set(kinds) == {"all", "new_only"}
    entry = kinds["all"]
    assert entry["content_omitted"] is True and "content_base64" not in entry
    assert entry["download_url"].startswith("/upload/files/") and entry["expires_in"] == 3600

    got = client.get(entry["download_url"])
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == f'attachment; filename="{entry["filename"]}"'
    assert got.headers["cache-control"] == "no-store"
    assert got.text.splitlines() == [
        "Date,Description,Amount",
        "03/14/2024,Office Depot,-45.00",
        "03/15/2024,Client payment INV-1001,1500.00",
        "03/18/2024,Verizon Wireless,-89.99",
        "03/22/2024,Bank fee,-12.00",
    ]
    again = client.get(entry["download_url"])
    assert again.status_code == 404 and "expired or was already used" in again.json()["error"]


def test_json_upload_and_links_expire_after_an_hour(client, clock):
    payload = {
        "filename": "webconnect.qbo",
        "content_base64": base64.b64encode((CORPUS / "webconnect.qbo").read_bytes()).decode(),
        "region": "UK",
    }
    r = client.post("/upload/analyse", json=payload)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["file_type"] == "qbo" and body["summary"]["intu_bid"] == "10898"
    [first] = body["converted"]
    r2 = client.post("/upload/analyse", json=payload)
    [second] = r2.json()["converted"]
    assert first["download_url"] != second["download_url"]  # a fresh random token each time

    clock.advance(3599)
    got = client.get(first["download_url"])
    assert got.status_code == 200 and got.text.startswith("Date,Description,Amount\r\n04/03/2024,")
    clock.advance(2)
    assert client.get(second["download_url"]).status_code == 404


def test_files_live_in_the_product_database_and_any_replica_serves_them(client, replica, product_db, clock):
    sender = sessions.SessionIds(sessions.load_secret()).issue(sessions.WEB)
    r = post_file(client, (CORPUS / "currency_symbols.csv").read_bytes(), "card.csv", sender=sender)
    [entry] = r.json()["converted"]
    token = entry["download_url"].rsplit("/", 1)[1]
    stored = rows(product_db)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert digest in stored and token not in stored  # only the hash is kept
    row = stored[digest]
    assert row.filename == entry["filename"] and row.content_type == "text/csv"
    assert row.conversation_id == sender and row.downloaded_at is None
    assert row.expires_at - row.created_at == timedelta(hours=1)
    assert row.content.startswith(b"Date,Description,Amount")

    with httpx.Client(base_url=f"http://127.0.0.1:{replica.port}", timeout=30) as other:
        got = other.get(entry["download_url"])  # the other replica never saw the upload
        assert got.status_code == 200 and got.text.startswith("Date,Description,Amount")
        assert other.get(entry["download_url"]).status_code == 404
    assert client.get(entry["download_url"]).status_code == 404  # single use across replicas
    used = rows(product_db)[digest]
    assert used.downloaded_at == clock.now and used.content == b""  # the bytes go at the download


def test_expired_rows_are_deleted_when_new_files_come_in(client, product_db, clock):
    old = post_file(client, CLEAN, "old.csv").json()["converted"][0]["download_url"]
    old_hash = hashlib.sha256(old.rsplit("/", 1)[1].encode()).hexdigest()
    assert old_hash in rows(product_db)
    clock.advance(3601)
    post_file(client, CLEAN, "new.csv")
    remaining = rows(product_db)
    assert old_hash not in remaining
    assert all(r.expires_at > clock.now for r in remaining.values())
    assert client.get(old).status_code == 404


def test_database_store_directly(product_db, clock):
    files = UploadFiles(product_db, ttl=60)
    before = len(files)
    token = files.put("x.csv", b"Date,Description,Amount\r\n", "text/csv", None)
    assert len(token) >= 43 and len(files) == before + 1
    assert files.take("nope-" + token) is None
    assert files.take(token) == ("x.csv", b"Date,Description,Amount\r\n", "text/csv")
    assert files.take(token) is None
    late = files.put("y.csv", b"y")
    clock.advance(61)
    assert files.take(late) is None and files.purge() >= 1


def test_without_a_product_database_files_stay_in_memory():
    channel = UploadInput(max_file_bytes=MAX_FILE, install_services=False)
    srv = start_app(channel)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=30) as c:
            [entry] = post_file(c).json()["converted"]
            assert len(channel.memory_store) == 1
            assert c.get(entry["download_url"]).text.startswith("Date,Description,Amount")
            assert c.get(entry["download_url"]).status_code == 404
    finally:
        srv.stop()


def test_rejected_file_types_are_a_report_not_an_error(client):
    r = post_file(client, (CORPUS / "statement.qif").read_bytes(), "statement.qif")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["file_type"] == "qif" and body["converted"] == []
    assert "QIF" in body["message"]


def test_ambiguous_dates_come_back_as_a_question(client):
    body = post_file(client, (CORPUS / "ambiguous_dates.csv").read_bytes(), "a.csv").json()
    assert body["needs_date_order"]["question"] == "Is 03/04/2024 March 4, 2024 or 3 April 2024?"
    assert body["converted"] == []


def test_cors_preflight(client):
    r = client.options("/upload/analyse", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "Content-Type" in r.headers["access-control-allow-headers"]


# ---------------------------------------------------------------------------- 413 / 415 / 400
def test_too_large_by_content_length(client, channel):
    r = client.post("/upload/analyse", content=b"x" * (channel.max_body + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()


def test_too_large_while_streaming(client, channel):
    def chunks():
        for _ in range(channel.max_body // 65536 + 2):
            yield b"a" * 65536

    r = client.post("/upload/analyse", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413


def test_file_over_the_limit_inside_a_small_enough_body(client):
    r = post_file(client, b"a" * (MAX_FILE + 1))
    assert r.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "text/csv", ""])
def test_wrong_content_type(client, content_type):
    r = client.post("/upload/analyse", content=CLEAN, headers={"Content-Type": content_type})
    assert r.status_code == 415


@pytest.mark.parametrize(
    "payload,content_type",
    [
        (b"{nope", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"filename": "x.csv"}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": "***not base64***"}', "application/json"),
        (b'{"content_base64": "YQ=="}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": "YQ==", "date_order": "sideways"}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": "YQ==", "last_booked": "yesterday"}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": "YQ==", "region": "United States"}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": "YQ==", "sender": "<script>"}', "application/json"),
        (b'{"filename": "x.csv", "content_base64": 42}', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'--xyz\r\nContent-Disposition: form-data; name="other"\r\n\r\nhi\r\n--xyz--\r\n', "multipart/form-data; boundary=xyz"),
        (b"garbage", "multipart/form-data"),
        (b"garbage without parts", "multipart/form-data; boundary=xyz"),
    ],
)
def test_malformed_requests(client, payload, content_type):
    r = client.post("/upload/analyse", content=payload, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert r.json()["error"]
    assert r.headers["access-control-allow-origin"] == "*"


def test_bad_download_tokens(client):
    assert client.get("/upload/files/short").status_code == 404
    assert client.get("/upload/files/" + "A" * 43).status_code == 404
    assert client.get("/upload/files/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_never_5xx_on_junk(client):
    junk = [
        (b"\x00" * 1000, 'multipart/form-data; boundary=""'),
        (b"--a\r\n\r\n\r\n--a--", "multipart/form-data; boundary=a"),
        (
            b'--a\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n\xff\xfe\x00junk\r\n--a--\r\n',
            "multipart/form-data; boundary=a",
        ),
        (b'{"filename": "' + b"x" * 5000 + b'", "content_base64": "YQ=="}', "application/json"),
        (
            b'{"filename": "x.qbo", "content_base64": "' + base64.b64encode(b"OFXHEADER:100\n<OFX><A><B>") + b'"}',
            "application/json",
        ),
        (b"null", "application/json; charset=utf-8"),
    ]
    for payload, content_type in junk:
        r = client.post("/upload/analyse", content=payload, headers={"Content-Type": content_type})
        assert 200 <= r.status_code < 500, (payload[:40], r.status_code, r.text)


def test_store_is_bounded_and_forgets():
    clock = FakeClock()
    store = FileStore(ttl=10, clock=clock, max_files=3, max_bytes=100)
    tokens = [store.put(f"f{i}.csv", b"x" * 10) for i in range(4)]
    assert len(store) == 3 and store.take(tokens[0]) is None  # the oldest made room
    assert store.take(tokens[3]) == ("f3.csv", b"x" * 10, "text/csv")
    assert store.take(tokens[3]) is None  # one download only
    big = store.put("big.csv", b"y" * 95)
    assert len(store) == 1 and store.take(big)
    token = store.put("late.csv", b"z")
    clock.now += 10
    assert store.take(token) is None and len(store) == 0
