"""The unknown-bank registry (bot/handoff/unknown_banks.py): which names are refused, how names are
counted, on SQLite and PostgreSQL; the CLI; and the console's JSON endpoints (signed-in agents only,
CSRF on the dismiss)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa

from bot.db.engine import Database
from bot.handoff import unknown_banks as module
from bot.handoff.unknown_banks import UnknownBanks, normalise
from bot.redaction import find_sensitive
from tests.pg import db, pg_url  # noqa: F401 (fixtures)
from tests.servers import ROOT


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 4, 23, 59, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def registry(db):
    return UnknownBanks(db)


# --------------------------------------------------------------------------- what is a plausible name
@pytest.mark.parametrize(
    "given, display",
    [
        ("Comerica", "Comerica"),
        ("  comerica.  ", "comerica"),
        ("Vermont   Federal\tCredit Union", "Vermont Federal Credit Union"),
        ("1st Source Bank", "1st Source Bank"),
        ("121 Financial Credit Union", "121 Financial Credit Union"),
        ("U.S. Bank", "U.S. Bank"),
        ("Wells Fargo & Co.", "Wells Fargo & Co"),
        ("People\u2019s United", "People's United"),
        ("Navy Federal (NFCU)", "Navy Federal (NFCU)"),
        ("Crédit Agricole", "Crédit Agricole"),
        ("Sparkasse Köln-Bonn", "Sparkasse Köln-Bonn"),
        ("みずほ銀行", "みずほ銀行"),
        ("Municipal Credit Union of the City of New York", "Municipal Credit Union of the City of New York"),
    ],
)
def test_plausible_names_are_kept_in_a_clean_display_form(given, display):
    assert normalise(given) == (display.casefold(), display)


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "a",
        "x" * 81,
        None,
        42,
        "/affirm",
        '/choose_bank{"bank":"Chase"}',  # button payloads
        "my account 12345678",
        "chase 4111 1111 1111 1111",
        "call 555 123 4567",
        "1234",  # digit runs
        "DE89 3704 0044 0532 0130 00",
        "routing 021000021",
        "comerica.com",
        "www.comerica.com",
        "https://secure.comerica.com/login?token=abc",
        "http://10.0.0.1/",
        "bank@example.com",
        "Comerica; DROP TABLE banks",
        "Chase\x00",
        "<script>alert(1)</script>",
        "one two three four five six seven eight nine ten eleven",
        "password hunter2",
        "my password is Tr0ub4dor&3",
    ],
)
def test_anything_else_is_refused(given):
    assert normalise(given) is None


def test_what_the_redaction_rules_flag_is_refused():
    assert find_sensitive("password hunter2") and normalise("password hunter2") is None


# --------------------------------------------------------------------------- counting
def test_names_are_counted_by_their_normalised_form(registry, clock):
    for given in ("comerica", "Comerica", " COMERICA. ", "Vermont Federal Credit Union"):
        registry.record(given)
    clock.advance(days=2)
    registry.record("comerica")
    names = registry.counts()
    assert [(n.name, n.count) for n in names] == [("Comerica", 4), ("Vermont Federal Credit Union", 1)]
    comerica = names[0]
    assert comerica.first_seen == date(2026, 12, 4) and comerica.last_seen == date(2026, 12, 6)
    assert comerica.to_dict() == {"name": "Comerica", "count": 4, "first_seen": "2026-12-04", "last_seen": "2026-12-06"}


def test_refused_names_are_not_stored(registry, db, caplog):
    with caplog.at_level(logging.DEBUG, logger=module.__name__):
        for given in ("/affirm", "my account 12345678", "https://phish.example/login", "password hunter2", ""):
            registry.record(given)
    assert registry.counts() == []
    assert "12345678" not in caplog.text and "hunter2" not in caplog.text  # nor logged


def test_only_a_count_and_two_days_are_stored(registry, db):
    registry.record("Comerica")
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("unknown_banks")}
    assert columns == {"key", "name", "count", "first_seen", "last_seen"}
    with db.engine.connect() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql("SELECT key, name, count FROM unknown_banks")] == [
            ("comerica", "Comerica", 1)
        ]


def test_counts_are_most_frequent_first_and_limited(registry, clock):
    for name, times in (("Alpha Bank", 1), ("Beta Credit Union", 3), ("Gamma Savings", 2)):
        for _ in range(times):
            registry.record(name)
    clock.advance(days=1)
    registry.record("Alpha Bank")  # 2, more recent than Gamma's 2
    assert [n.name for n in registry.counts()] == ["Beta Credit Union", "Alpha Bank", "Gamma Savings"]
    assert [n.name for n in registry.counts(limit=1)] == ["Beta Credit Union"]


def test_dismiss_forgets_a_name(registry):
    registry.record("Comerica")
    registry.record("Vermont Federal Credit Union")
    assert registry.dismiss(" comerica ") is True
    assert registry.dismiss("Comerica") is False and registry.dismiss("/nonsense") is False
    assert [n.name for n in registry.counts()] == ["Vermont Federal Credit Union"]


def test_many_threads_recording_a_new_name_count_every_one(registry):
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(5):
            registry.record("Comerica")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [(n.name, n.count) for n in registry.counts()] == [("Comerica", 40)]


def test_a_full_registry_makes_room_from_stale_single_names(registry, clock, monkeypatch):
    monkeypatch.setattr(module, "MAX_NAMES", 3)
    for name in ("Old Once Bank", "Old Twice Bank", "Old Twice Bank", "Recent Bank"):
        registry.record(name)
    clock.advance(days=module.STALE_DAYS + 1)
    registry.record("Recent Bank")
    registry.record("New Bank")  # full: the stale name given once makes room
    registry.record("Newer Bank")  # full again, nothing stale: dropped
    registry.record("Recent Bank")  # known names still count
    assert {n.name: n.count for n in registry.counts()} == {"Recent Bank": 3, "Old Twice Bank": 2, "New Bank": 1}


def test_storage_errors_are_logged_never_raised(tmp_path, caplog):
    unmigrated = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # no unknown_banks table
    with caplog.at_level(logging.WARNING, logger=module.__name__):
        UnknownBanks(unmigrated).record("Comerica")
    assert "Could not record an unknown bank name" in caplog.text
    unmigrated.dispose()


# --------------------------------------------------------------------------- the CLI
def test_cli_lists_and_dismisses(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    db.migrate()
    for name in ("Comerica", "Comerica", "Vermont Federal Credit Union"):
        UnknownBanks(db).record(name)
    db.dispose()

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "bot.handoff.cli", "--db-url", url, "unknown-banks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli()
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["COUNT", "NAME", "FIRST", "SEEN", "LAST", "SEEN"]
    assert lines[1].split()[:2] == ["2", "Comerica"] and "Vermont Federal Credit Union" in lines[2]
    as_json = cli("--json", "--limit", "1")
    assert as_json.returncode == 0 and '"name": "Comerica"' in as_json.stdout and "Vermont" not in as_json.stdout
    assert cli("--dismiss", "comerica").returncode == 0
    missing = cli("--dismiss", "comerica")
    assert missing.returncode == 1 and "No such name" in missing.stderr
    assert "Comerica" not in cli().stdout


# --------------------------------------------------------------------------- the console's endpoints
def test_console_lists_unknown_banks_to_signed_in_agents_only(rasa_stack, handoff_db, make_agent):
    UnknownBanks(handoff_db.database).dismiss("Comerica")
    for _ in range(3):
        UnknownBanks(handoff_db.database).record("Comerica")
    UnknownBanks(handoff_db.database).record("Tiny Town Credit Union")

    anonymous = httpx.get(f"{rasa_stack.url}/agent/api/unknown-banks", timeout=10)
    assert anonymous.status_code == 401
    assert (
        httpx.post(f"{rasa_stack.url}/agent/api/unknown-banks/dismiss", json={"name": "Comerica"}, timeout=10).status_code == 401
    )

    agent = make_agent("registry-agent", "Reg")
    names = agent.get("/unknown-banks").json()["unknown_banks"]
    comerica = next(n for n in names if n["name"] == "Comerica")
    assert comerica["count"] == 3 and set(comerica) == {"name", "count", "first_seen", "last_seen"}
    assert any(n["name"] == "Tiny Town Credit Union" for n in names)
    assert agent.get("/unknown-banks", params={"limit": "lots"}).status_code == 400
    assert agent.get("/unknown-banks", params={"limit": "0"}).status_code == 400

    # the dismiss changes state: with the session cookie it needs the session's CSRF token
    no_token = httpx.post(
        f"{rasa_stack.url}/agent/api/unknown-banks/dismiss", json={"name": "Comerica"}, cookies=agent.http.cookies, timeout=10
    )
    assert no_token.status_code == 403
    assert agent.post("/unknown-banks/dismiss", json={"name": "comerica"}).json() == {"dismissed": "comerica"}
    assert agent.post("/unknown-banks/dismiss", json={"name": "comerica"}).status_code == 404
    assert agent.post("/unknown-banks/dismiss", json={}).status_code == 400
    assert all(n["name"] != "Comerica" for n in agent.get("/unknown-banks").json()["unknown_banks"])
