"""How long the outage radar's detection check takes over two weeks of signals (prints figures, asserts nothing).

    .venv/bin/python -m bench.radar                   # SQLite in a temporary directory
    .venv/bin/python -m bench.radar --db-url postgresql://postgres@127.0.0.1:5432/radar_bench   # an EMPTY database

50 banks, two weeks of simulated signals (tests/radar_streams.py): 5 big banks (40 reports an hour, a
probe a minute), 15 medium (4 reports, 20 probes an hour), 30 small (one report every 5 hours, a probe
an hour). Measured, each the median of several runs:

* a cold check: the baseline query (two weeks of one bank's signals) plus the window query, as the
  first signal of a bank in ``baseline_cache_seconds`` pays it;
* a warm check: what every other report costs (the insert, the window query, the outage row), through
  ``OutageRadar.record_report``;
* the console's 24-hour timeline of all banks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, List

from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.models import BankSignal
from bot.outages.radar import OutageRadar, RadarSettings
from tests.radar_streams import simulate

SIZES = (("big", 5, 40.0, 60.0), ("medium", 15, 4.0, 20.0), ("small", 30, 0.2, 1.0))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times: List[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", help="an empty database (default: SQLite in a temporary directory)")
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        db = Database(args.db_url or f"sqlite:///{Path(tmp) / 'radar.db'}", clock=clock)
        db.migrate()
        settings = RadarSettings()
        radar = OutageRadar(db, settings)
        end = clock.now - timedelta(minutes=settings.window_minutes)
        start = time.perf_counter()
        banks = {}
        for size, count, reports, probes in SIZES:
            banks[size] = [f"{size.title()} Bank {i}" for i in range(count)]
            for name in banks[size]:
                simulate(
                    db,
                    name,
                    end - timedelta(days=args.days),
                    end,
                    reports_per_hour=reports,
                    verified_share=0.1,
                    probes_per_hour=probes,
                    failure_share=0.01,
                )
        with db.reading() as s:
            total = s.execute(select(func.count()).select_from(BankSignal)).scalar_one()
        print(
            f"{db.dialect}: {total:,} signals of 50 banks over {args.days:g} days "
            f"(written in {time.perf_counter() - start:.1f} s)"
        )

        def cold(bank: str) -> Callable[[], object]:
            def check() -> object:
                radar.forget_baseline(bank)
                return radar.assess(bank)

            return check

        print(f"{'check':<40} {'median ms':>10}")
        for size in ("big", "medium", "small"):
            bank = banks[size][0]
            print(f"{'cold check, one ' + size + ' bank':<40} {median_ms(cold(bank), args.runs):>10.1f}")

        def all_cold() -> None:
            radar.forget_baseline()
            for names in banks.values():
                for name in names:
                    radar.assess(name)

        print(f"{'cold check of all 50 banks':<40} {median_ms(all_cold, max(3, args.runs // 2)):>10.1f}")
        radar.assess(banks["big"][0])  # warm the cache
        counter = iter(range(10**9))
        big = banks["big"][0]

        def report() -> None:
            clock.now += timedelta(seconds=1)
            radar.record_report(big, "bank_unavailable", f"bench-{next(counter)}")

        print(f"{'warm check: record_report, big bank':<40} {median_ms(report, args.runs * 5):>10.1f}")
        print(f"{'24-hour timeline of all banks':<40} {median_ms(radar.timeline, args.runs):>10.1f}")
        verdicts = [radar.assess(b)["suspected"] for names in banks.values() for b in names]
        print(f"banks flagged at their usual rates: {sum(verdicts)} of {len(verdicts)}")
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
