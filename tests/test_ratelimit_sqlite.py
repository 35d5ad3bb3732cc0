"""Rate-limit counts on SQLite (bot/ratelimit_sqlite.py): the URL, the moving and fixed windows on a
controlled clock, one total for several processes, the fall-back to memory when the file does not
answer, and the console's sign-in guard on it."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from limits import parse
from limits.errors import ConfigurationError
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bot import ratelimit, ratelimit_sqlite
from bot.ratelimit import RateLimiter, parse_limits
from bot.ratelimit_sqlite import SQLiteStorage, parse_url
from bot.server.console.login_guard import GuardSettings, GuardUnavailable, LoginGuard
from tests import servers


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


# ------------------------------------------------------------------ the URL
def test_urls_name_a_file_relative_or_absolute_and_bad_ones_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///var/ratelimits.db") == (tmp_path / "var" / "ratelimits.db", ratelimit_sqlite.DEFAULT_TIMEOUT)
    assert parse_url("sqlite:////srv/x/rl.db?timeout=2") == (Path("/srv/x/rl.db"), 2.0)
    assert parse_url("sqlite:///my%20counts.db")[0] == tmp_path / "my counts.db"
    for bad in (
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://host/x.db",
        "sqlite:///var/",
        "sqlite:///x.db?timeout=0",
        "sqlite:///x.db?timeout=soon",
        "sqlite:///x.db?mode=ro",
        "redis://localhost/0",
    ):
        with pytest.raises(ConfigurationError):
            parse_url(bad)
    assert isinstance(ratelimit_sqlite.storage_from_url("sqlite:///rl.db"), SQLiteStorage)
    assert type(ratelimit_sqlite.storage_from_url("memory://")).__name__ == "MemoryStorage"


def test_the_file_is_private_and_the_limiter_names_it_without_secrets(tmp_path):
    limiter = RateLimiter({"chat_per_sender": parse_limits("2/minute")}, _url(tmp_path / "rl" / "counts.db"))
    assert limiter.remote  # called in a worker thread, with the memory fall-back
    assert limiter.hit("chat_per_sender", "rest-1").allowed
    assert stat.S_IMODE(os.stat(tmp_path / "rl" / "counts.db").st_mode) & 0o077 == 0
    from_env = RateLimiter.from_settings({}, {"RATE_LIMIT_STORAGE_URL": _url(tmp_path / "rl" / "counts.db")})
    assert isinstance(from_env._storages[0], SQLiteStorage)


# ------------------------------------------------------------------ the windows, on a controlled clock
def test_moving_window_counts_the_last_period_and_frees_up_as_hits_age(tmp_path):
    clock = Clock()
    storage = SQLiteStorage(_url(tmp_path / "rl.db"), clock=clock)
    window = MovingWindowRateLimiter(storage)
    item = parse("3/10seconds")
    for _ in range(3):
        assert window.hit(item, "alice")
        clock.now += 2  # hits at t0, t0+2, t0+4
    assert not window.hit(item, "alice") and not window.test(item, "alice")
    assert window.hit(item, "bob")  # per identifier
    assert window.get_window_stats(item, "alice") == (int(1_000_000 + 4 + 10), 0)  # empty again 10 s after the newest hit
    clock.now = 1_000_000 + 10.5  # the first hit left the window: one place
    assert window.test(item, "alice") and window.get_window_stats(item, "alice")[1] == 1
    assert window.hit(item, "alice") and not window.hit(item, "alice")
    clock.now += 100
    assert window.get_window_stats(item, "alice") == (int(clock.now) + 10, 3)  # nothing in the window
    # an amount larger than what is left is refused and not recorded
    big = parse("5/minute")
    assert window.hit(big, "carol", cost=4) and not window.hit(big, "carol", cost=2) and window.hit(big, "carol", cost=1)
    window.clear(big, "carol")
    assert window.get_window_stats(big, "carol")[1] == 5


def test_fixed_window_counts_until_its_expiry_and_elastic_expiry_pushes_it(tmp_path):
    clock = Clock()
    storage = SQLiteStorage(_url(tmp_path / "rl.db"), clock=clock)
    fixed = FixedWindowRateLimiter(storage)
    item = parse("1000/hour")
    assert fixed.hit(item, "198.51.100.1", cost=600) and not fixed.hit(item, "198.51.100.1", cost=600)
    assert fixed.get_window_stats(item, "198.51.100.1") == (1_000_000 + 3600, 0)  # 1200 counted, none left
    clock.now += 3599
    assert storage.get(item.key_for("198.51.100.1")) == 1200
    clock.now += 2  # expired: a new window at the next hit
    assert storage.get(item.key_for("198.51.100.1")) == 0
    assert storage.get_expiry(item.key_for("198.51.100.1")) == int(clock.now)
    assert fixed.hit(item, "198.51.100.1", cost=10)
    assert fixed.get_window_stats(item, "198.51.100.1") == (int(clock.now) + 3600, 990)
    start = clock.now
    assert storage.incr("elastic", 60, elastic_expiry=True) == 1
    clock.now += 50
    assert storage.incr("elastic", 60, elastic_expiry=True) == 2
    assert storage.get_expiry("elastic") == int(start + 50 + 60)
    assert storage.check()
    assert storage.reset() == 2 and storage.get("elastic") == 0


def test_expired_rows_are_purged(tmp_path):
    clock = Clock()
    storage = SQLiteStorage(_url(tmp_path / "rl.db"), clock=clock)
    window = MovingWindowRateLimiter(storage)
    for n in range(50):
        assert window.hit(parse("1/minute"), f"sender-{n}")
    storage.incr("counter", 30)
    clock.now += ratelimit_sqlite.PURGE_EVERY_SECONDS + 1
    window.hit(parse("1/minute"), "sender-new")
    with sqlite3.connect(tmp_path / "rl.db") as conn:
        assert conn.execute("SELECT key FROM window_entries").fetchall() == [(parse("1/minute").key_for("sender-new"),)]
        assert conn.execute("SELECT COUNT(*) FROM counters").fetchone() == (0,)


# ------------------------------------------------------------------ several processes, one count
HITTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bot.ratelimit import RateLimiter, parse_limits

    url, go = sys.argv[1], Path(sys.argv[2])
    limiter = RateLimiter({"chat_per_sender": parse_limits("5/minute"), "upload_bytes_per_address": parse_limits("500/hour")}, url)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.002)
    # 20 conversations and 20 addresses, 8 tries each: 20 limits reached at the same moment by every process
    messages = [sum(limiter.hit("chat_per_sender", f"rest-{n}").allowed for _ in range(8)) for n in range(20)]
    uploads = [sum(limiter.hit("upload_bytes_per_address", f"198.51.100.{n}", cost=100).allowed for _ in range(8)) for n in range(20)]
    assert limiter._fallback_until == 0, "fell back to memory"
    print(" ".join(map(str, messages)), "|", " ".join(map(str, uploads)), flush=True)
    """
)


def _hit_from_processes(tmp_path: Path, url: str, processes: int = 3) -> list:
    """Each process's allowed hits per conversation and per address."""
    script = tmp_path / "hitter.py"
    script.write_text(HITTER)
    go = tmp_path / f"go-{url.split(':')[0]}"
    env = servers.base_env({"PYTHONPATH": str(servers.ROOT)})
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            messages, uploads = out.split("|")
            results.append(([int(n) for n in messages.split()], [int(n) for n in uploads.split()]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_processes_counting_against_one_limit_see_one_total(tmp_path):
    # (three processes hitting in a tight loop keep the file busy all the time, which no server does: a
    # longer wait than the default keeps SQLite's busy handler from giving up and counting in memory)
    counts = _hit_from_processes(tmp_path, _url(tmp_path / "shared.db", "?timeout=10"))
    # per conversation: 24 tries from three processes, one limit of 5 between them
    assert [sum(c[0][n] for c in counts) for n in range(20)] == [5] * 20
    # per address: 500 bytes an hour, in hundreds
    assert [sum(c[1][n] for c in counts) for n in range(20)] == [5] * 20
    # the same processes each counting in their own memory allow the limit each: what SQLite prevents
    alone = _hit_from_processes(tmp_path, "memory://")
    assert alone == [([5] * 20, [5] * 20)] * 3


def test_connections_opening_a_new_file_together_all_get_it(tmp_path):
    # Six connections opening a new file at the same moment all switch it to WAL: one wins, the others
    # were answered "database is locked" at once (SQLite does not wait there), which sent a process
    # starting beside another to count in memory (seen in CI); they now try again within the timeout.
    import threading

    for run in range(60):
        url = _url(tmp_path / f"new-{run}.db", "?timeout=5")
        storages = [SQLiteStorage(url) for _ in range(6)]
        barrier = threading.Barrier(len(storages))
        errors: list = []

        def first_hit(storage: SQLiteStorage, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
            barrier.wait()
            try:
                assert storage.acquire_entry("rest-1", 100, 60)
            except Exception as exc:  # collected: an exception in a thread would not fail the test
                errors.append(exc)

        threads = [threading.Thread(target=first_hit, args=(storage,)) for storage in storages]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"run {run}: {errors}"
        assert storages[0].get_moving_window("rest-1", 100, 60)[1] == 6


# ------------------------------------------------------------------ when the file does not answer
def test_an_unusable_file_falls_back_to_counting_in_memory(tmp_path):
    clock = Clock()
    (tmp_path / "not-a-file.db").mkdir()
    limiter = RateLimiter({"chat_per_sender": parse_limits("2/minute")}, _url(tmp_path / "not-a-file.db"), clock=clock)
    assert limiter.hit("chat_per_sender", "x").allowed and limiter.hit("chat_per_sender", "x").allowed
    assert not limiter.hit("chat_per_sender", "x").allowed  # still limited, in this process
    assert limiter._fallback_until > clock.now


def test_a_busy_file_falls_back_and_the_counts_go_back_to_the_file_afterwards(tmp_path):
    clock = Clock()
    path = tmp_path / "rl.db"
    items = {"chat_per_sender": parse_limits("3/minute")}
    limiter = RateLimiter(items, _url(path, "?timeout=0.05"), clock=clock)
    assert limiter.hit("chat_per_sender", "rest-a").allowed  # counted in the file
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process stuck in a write
    try:
        assert limiter.hit("chat_per_sender", "rest-a").allowed
        assert limiter._fallback_until == clock.now + ratelimit.FALLBACK_SECONDS  # counted in memory meanwhile
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    clock.now += ratelimit.FALLBACK_SECONDS  # the limiter tries the file again
    other = RateLimiter(items, _url(path))  # another process's view of the file
    assert limiter.hit("chat_per_sender", "rest-a").allowed and limiter._fallback_until <= clock.now
    assert other.hit("chat_per_sender", "rest-a").allowed  # the file holds 2 of the 3 hits, plus this one
    assert not other.hit("chat_per_sender", "rest-a").allowed


# ------------------------------------------------------------------ the console's sign-in guard
def test_sign_in_limits_are_shared_through_sqlite_and_a_broken_file_refuses(tmp_path):
    url = _url(tmp_path / "login.db")
    settings = GuardSettings(account_max_failures=3, address_max_failures=10, failure_window=900, lockout=900)
    one, two = LoginGuard(settings, url), LoginGuard(settings, url)
    for guard in (one, two, one):
        assert guard.begin("dana", "198.51.100.4") is None
        guard.failed("dana", "198.51.100.4")
    assert two.begin("dana", "203.0.113.8") == 900  # the budget ran out across both
    assert one.locked_for("dana", "203.0.113.8") is not None
    (tmp_path / "broken.db").mkdir()
    with pytest.raises(GuardUnavailable):
        LoginGuard(settings, _url(tmp_path / "broken.db")).begin("dana", "198.51.100.4")
