"""What one rate-limit hit costs on each counter storage (bot/ratelimit.py): prints microseconds per call.

    .venv/bin/python -m bench.ratelimit_storage [--hits 2000]

For each storage (memory://, sqlite:// in a temporary directory, and redis://127.0.0.1:6379/15 when it
answers), with the default limits: ``RateLimiter.hit`` of a chat message's two checks as the channels
make them (``chat_per_address`` then ``chat_per_sender`` with its two moving windows: three window
entries), a fixed-window hit (``upload_bytes_per_address``), the storage's ``acquire_entry`` alone (one
moving-window hit), and a refused ``acquire_entry`` of a key with 300 entries in its window (an
address at its limit). The hits rotate over 5,000 conversations and addresses, so nothing else is
refused. Called inline in this thread (the server calls sqlite and redis in a worker thread, which
adds the thread hand-off).
Asserts nothing; the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import timeit
from pathlib import Path

from bot.ratelimit import RateLimiter, configured_limits

IDENTIFIERS = 5000  # conversations and addresses the hits rotate over: no limit is reached


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def measure(url: str, hits: int) -> dict:
    limiter = RateLimiter(configured_limits({}, {}), url)
    storage = limiter._storages[0]
    counter = iter(range(10**9))

    def message() -> None:
        n = next(counter) % IDENTIFIERS
        assert limiter.hit("chat_per_address", f"address-{n}").allowed
        assert limiter.hit("chat_per_sender", f"rest-bench-{n}").allowed

    def upload() -> None:
        assert limiter.hit("upload_bytes_per_address", f"address-{next(counter) % IDENTIFIERS}", cost=1000).allowed

    def entry() -> None:
        assert storage.acquire_entry(f"bench/entry/{next(counter) % IDENTIFIERS}", 300, 60)

    def full() -> None:
        # one address at its limit of 300 a minute: 300 entries in its window, the hit refused
        assert not storage.acquire_entry("bench/full", 300, 60), (storage, storage.get_moving_window("bench/full", 300, 60))

    figures = {}
    for _ in range(300):
        storage.acquire_entry("bench/full", 300, 60)
    cases = (
        ("message (3 window hits)", message),
        ("fixed-window hit", upload),
        ("acquire_entry", entry),
        ("refused at 300", full),
    )
    for name, fn in cases:
        fn()  # connect, create the schema
        seconds = min(timeit.repeat(fn, number=hits, repeat=3))
        figures[name] = seconds / hits * 1e6
    assert limiter._fallback_until == 0, f"{url} did not answer: counted in memory"
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--hits", type=int, default=2000, help="calls per timing (best of 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{Path(tmp) / 'ratelimits.db'}"}
        if _redis_answers():
            urls["redis"] = "redis://127.0.0.1:6379/15"
        results = {name: measure(url, args.hits) for name, url in urls.items()}
    columns = list(next(iter(results.values())))
    print(f"{'storage':<8}" + "".join(f"{c:>26}" for c in columns) + "   (us per call, best of 3 x %d)" % args.hits)
    for name, figures in results.items():
        print(f"{name:<8}" + "".join(f"{figures[c]:>26.1f}" for c in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
