"""Simulated signal streams for the outage radar: weeks of one bank's reports and probes, written
straight into ``bank_signals`` as the radar would have recorded them (used by tests/test_outage_radar.py
and bench/radar.py)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, Dict, List

from sqlalchemy import insert

from bot.db.engine import Database
from bot.db.models import BankSignal

BATCH = 5000


def _arrivals(rng: random.Random, start: datetime, end: datetime, per_hour: float) -> List[datetime]:
    """The times of a Poisson stream of ``per_hour`` events an hour between ``start`` and ``end``."""
    if per_hour <= 0:
        return []
    times, t = [], start
    while True:
        t += timedelta(hours=rng.expovariate(per_hour))
        if t >= end:
            return times
        times.append(t)


def simulate(
    db: Database,
    bank: str,
    start: datetime,
    end: datetime,
    *,
    reports_per_hour: float = 0.0,
    verified_share: float = 0.0,
    probes_per_hour: float = 0.0,
    failure_share: float = 0.0,
    seed: int = 0,
) -> Dict[str, int]:
    """Writes a random stream of ``bank``'s signals between ``start`` and ``end``: reports of the bank
    unavailable, each from its own conversation (``verified_share`` of them through a verified channel),
    and probes (``failure_share`` of them ``down``, the rest ``up``). Returns how many of each."""
    rng = random.Random(f"{bank}/{seed}")
    rows: List[Dict[str, Any]] = []
    counts = {"reports": 0, "verified": 0, "probes": 0, "failures": 0}
    for i, at in enumerate(_arrivals(rng, start, end, reports_per_hour)):
        verified = rng.random() < verified_share
        rows.append(
            {
                "bank": bank,
                "kind": "report",
                "status": rng.choice(("bank_unavailable", "connection_failure")),
                "conversation_id": f"sim-{seed}-{bank}-{i}",
                "created_at": at,
                "verified": verified,
                "client_key": None,
            }
        )
        counts["reports"] += 1
        counts["verified"] += verified
    for at in _arrivals(rng, start, end, probes_per_hour):
        failed = rng.random() < failure_share
        rows.append(
            {
                "bank": bank,
                "kind": "probe",
                "status": "down" if failed else "up",
                "conversation_id": None,
                "created_at": at,
                "verified": False,
                "client_key": None,
            }
        )
        counts["probes"] += 1
        counts["failures"] += failed
    for i in range(0, len(rows), BATCH):
        with db.writing() as s:
            s.execute(insert(BankSignal), rows[i : i + BATCH])
    return counts
