"""Detects suspected bank outages from bursts of reports and failed probes, and clears them.

Every diagnosis that names a bank and every fresh bank-site probe is recorded as a signal. A
suspected outage changes other customers' conversations (the shortened path), so reports alone,
which anyone can send, are not enough. A bank is a **suspected outage** when, within the sliding
window:

* enough probes of its site failed (``down`` or ``maintenance``; ``unknown`` never counts: it may be
  our own network), or
* enough distinct **verified** sources reported it unavailable (users of an authenticated channel,
  Slack or Teams, ``verified_channels``), or
* enough distinct sources reported it (anonymous REST / widget sessions included) **and** at least
  ``min_corroborating_failures`` probes of its site failed too.

A source is a conversation; each conversation's report of a bank is stored once per window, and a
client address over ``outage_reports_per_address`` (bot/ratelimit.py) is not recorded at all.
It clears once a probe answers again and the reports have calmed down, or when no evidence is left
in the window. Thresholds live in ``bankfeed.yml`` (``outage_radar``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Dict, List, Mapping, Optional, Tuple

import sqlalchemy as sa
from sqlalchemy import func, select

from bot.handoff.models import BankSignal, Outage
from bot.handoff.store import HandoffStore

REPORTING_DIAGNOSES = ("bank_unavailable", "connection_failure")
FAILED_PROBES = ("down", "maintenance")
HEALTHY_PROBES = ("up", "slow")


@dataclass(frozen=True)
class RadarSettings:
    window_minutes: float = 30
    min_reports: int = 5           # distinct sources reporting the bank unavailable in the window...
    min_corroborating_failures: int = 1  # ...with at least this many failed probes (anonymous reports)
    min_verified_reports: int = 3  # distinct verified sources: enough on their own
    min_probe_failures: int = 2    # failed probes in the window: enough on their own
    verified_channels: Tuple[str, ...] = ("slack", "botframework")
    quiet_minutes: float = 10      # after a healthy probe, verified reports in this span must be under min_verified_reports
    recheck_minutes: float = 5     # how often a notice's bank is probed again
    notice_expiry_hours: float = 24
    notifier_interval_seconds: float = 30

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "RadarSettings":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown outage_radar settings: {', '.join(sorted(unknown))}")
        if "verified_channels" in data:
            data["verified_channels"] = tuple(str(c) for c in data["verified_channels"] or ())
        return cls(**data)

    def is_verified(self, channel: Optional[str]) -> bool:
        return bool(channel) and channel in self.verified_channels


@dataclass(frozen=True)
class OutageView:
    id: int
    bank: str
    started_at: datetime
    detected_at: datetime
    cleared_at: Optional[datetime]
    report_count: int
    probe_failures: int
    last_signal_at: datetime

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "bank": self.bank,
            "active": self.active,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "detected_at": self.detected_at.isoformat(timespec="seconds"),
            "cleared_at": self.cleared_at.isoformat(timespec="seconds") if self.cleared_at else None,
            "report_count": self.report_count,
            "probe_failures": self.probe_failures,
            "last_signal_at": self.last_signal_at.isoformat(timespec="seconds"),
        }


def _view(o: Outage) -> OutageView:
    return OutageView(o.id, o.bank, o.started_at, o.detected_at, o.cleared_at, o.report_count, o.probe_failures, o.last_signal_at)


class OutageRadar:
    def __init__(self, store: HandoffStore, settings: Optional[RadarSettings] = None):
        self.store = store
        self.settings = settings or RadarSettings()

    # ------------------------------------------------------------------ signals
    def record_report(self, bank: str, diagnosis: str, conversation_id: Optional[str], verified: bool = False,
                      client_key: Optional[str] = None) -> Optional[OutageView]:
        """Records a diagnosis naming ``bank`` (once per conversation, bank and window); returns the
        bank's outage if one is (now) suspected. ``verified``: the report came through an
        authenticated channel; ``client_key``: the reporting client's pseudonym, when known."""
        return self._record(bank, "report", diagnosis, conversation_id, verified, client_key)

    def record_probe(self, bank: str, status: str) -> Optional[OutageView]:
        """Records a fresh (not cached) probe of the bank's site."""
        return self._record(bank, "probe", status, None)

    def _record(self, bank: str, kind: str, status: str, conversation_id: Optional[str], verified: bool = False,
                client_key: Optional[str] = None) -> Optional[OutageView]:
        with self.store.writing() as s:
            now = self.store.now()
            if not (kind == "report" and self._reported_already(s, bank, status, conversation_id, now)):
                s.add(BankSignal(bank=bank, kind=kind, status=status, conversation_id=conversation_id, created_at=now,
                                 verified=bool(verified), client_key=client_key))
                s.flush()
            outage = self._evaluate(s, bank, now)
            return _view(outage) if outage is not None and outage.cleared_at is None else None

    def _reported_already(self, s: Any, bank: str, status: str, conversation_id: Optional[str], now: datetime) -> bool:
        """True if this conversation already reported ``bank`` (same diagnosis) within the window."""
        if conversation_id is None:
            return False
        since = now - timedelta(minutes=self.settings.window_minutes)
        return s.execute(
            select(BankSignal.id).where(
                BankSignal.bank == bank, BankSignal.kind == "report", BankSignal.status == status,
                BankSignal.conversation_id == conversation_id, BankSignal.created_at >= since,
            ).limit(1)
        ).first() is not None

    # ------------------------------------------------------------------ detection
    def _counts(self, s: Any, bank: str, since: datetime) -> Dict[str, Any]:
        # a source is a conversation (how many one client may report is limited before they are
        # recorded: outage_reports_per_address in bot/ratelimit.py)
        source = sa.distinct(BankSignal.conversation_id)
        reporting = (BankSignal.bank == bank, BankSignal.kind == "report",
                     BankSignal.status.in_(REPORTING_DIAGNOSES), BankSignal.created_at >= since)
        reports = s.execute(select(func.count(source), func.min(BankSignal.created_at)).where(*reporting)).one()
        verified = s.execute(select(func.count(source)).where(*reporting, BankSignal.verified.is_(True))).scalar_one()
        failures = s.execute(
            select(func.count(), func.min(BankSignal.created_at)).where(
                BankSignal.bank == bank, BankSignal.kind == "probe",
                BankSignal.status.in_(FAILED_PROBES), BankSignal.created_at >= since,
            )
        ).one()
        last_probe = s.execute(
            select(BankSignal.status, BankSignal.created_at)
            .where(BankSignal.bank == bank, BankSignal.kind == "probe", BankSignal.status != "unknown")
            .order_by(BankSignal.created_at.desc(), BankSignal.id.desc()).limit(1)
        ).first()
        firsts = [t for t in (reports[1], failures[1]) if t is not None]
        return {"reports": reports[0], "verified": verified, "failures": failures[0],
                "first": min(firsts) if firsts else None, "last_probe": last_probe}

    def _suspected(self, window: Dict[str, Any]) -> bool:
        """Confirmed evidence: failed probes, verified reports, or reports corroborated by a failed probe."""
        cfg = self.settings
        return (
            window["failures"] >= cfg.min_probe_failures
            or window["verified"] >= cfg.min_verified_reports
            or (window["reports"] >= cfg.min_reports and window["failures"] >= cfg.min_corroborating_failures)
        )

    def _evaluate(self, s: Any, bank: str, now: datetime) -> Optional[Outage]:
        cfg = self.settings
        window = self._counts(s, bank, now - timedelta(minutes=cfg.window_minutes))
        suspected = self._suspected(window)
        outage = s.execute(select(Outage).where(Outage.bank == bank, Outage.cleared_at.is_(None))).scalar_one_or_none()
        if outage is None:
            if suspected:
                outage = Outage(bank=bank, started_at=window["first"] or now, detected_at=now, cleared_at=None,
                                report_count=window["reports"], probe_failures=window["failures"], last_signal_at=now)
                s.add(outage)
                s.flush()
            return outage
        outage.report_count = max(outage.report_count, window["reports"])
        outage.probe_failures = max(outage.probe_failures, window["failures"])
        outage.last_signal_at = now
        if self._recovered(s, bank, now, window, suspected):
            outage.cleared_at = now
        return outage

    def _recovered(self, s: Any, bank: str, now: datetime, window: Dict[str, Any], suspected: bool) -> bool:
        cfg = self.settings
        if not suspected:
            return True  # the evidence has aged out of the window
        last_probe = window["last_probe"]
        if last_probe is None or last_probe[0] not in HEALTHY_PROBES:
            return False
        quiet = self._counts(s, bank, now - timedelta(minutes=cfg.quiet_minutes))
        since_probe = self._counts(s, bank, last_probe[1])
        # anonymous reports alone cannot hold an outage open against a site that answers again
        return quiet["verified"] < cfg.min_verified_reports and since_probe["failures"] == 0

    def refresh(self, bank: Optional[str] = None) -> List[OutageView]:
        """Re-evaluates open outages (all, or one bank's) so old evidence ages out; returns those cleared."""
        cleared = []
        with self.store.writing() as s:
            now = self.store.now()
            query = select(Outage).where(Outage.cleared_at.is_(None))
            if bank:
                query = query.where(Outage.bank == bank)
            for outage in s.execute(query).scalars().all():
                self._evaluate(s, outage.bank, now)
                if outage.cleared_at is not None:
                    cleared.append(_view(outage))
        return cleared

    # ------------------------------------------------------------------ queries
    def current(self, bank: str) -> Optional[OutageView]:
        with self.store.reading() as s:
            outage = s.execute(select(Outage).where(Outage.bank == bank, Outage.cleared_at.is_(None))).scalar_one_or_none()
            return _view(outage) if outage else None

    def active(self) -> List[OutageView]:
        with self.store.reading() as s:
            rows = s.execute(select(Outage).where(Outage.cleared_at.is_(None)).order_by(Outage.started_at)).scalars()
            return [_view(o) for o in rows]

    def history(self, days: float = 7) -> List[OutageView]:
        with self.store.reading() as s:
            since = self.store.now() - timedelta(days=days)
            rows = s.execute(
                select(Outage).where(sa.or_(Outage.cleared_at.is_(None), Outage.cleared_at >= since))
                .order_by(Outage.started_at.desc())
            ).scalars()
            return [_view(o) for o in rows]

    def timeline(self, hours: float = 24, bucket_minutes: int = 60) -> Dict[str, Any]:
        """Reports and failed probes per bank in time buckets, for the console's chart."""
        with self.store.reading() as s:
            now = self.store.now()
            since = now - timedelta(hours=hours)
            rows = s.execute(
                select(BankSignal.bank, BankSignal.kind, BankSignal.status, BankSignal.created_at)
                .where(BankSignal.created_at >= since)
            ).all()
        buckets = int(hours * 60 // bucket_minutes)
        series: Dict[str, Dict[str, List[int]]] = {}
        for bank, kind, status, at in rows:
            if (kind == "report" and status not in REPORTING_DIAGNOSES) or (kind == "probe" and status not in FAILED_PROBES):
                continue
            index = min(buckets - 1, int((at - since).total_seconds() // (bucket_minutes * 60)))
            per_bank = series.setdefault(bank, {"reports": [0] * buckets, "probe_failures": [0] * buckets})
            per_bank["reports" if kind == "report" else "probe_failures"][index] += 1
        return {
            "since": since.isoformat(timespec="seconds"),
            "bucket_minutes": bucket_minutes,
            "banks": series,
        }

    def status(self) -> Dict[str, Any]:
        """The public picture: current and recent suspected outages, with counts and a timeline."""
        return {
            "active": [o.to_dict() for o in self.active()],
            "recent": [o.to_dict() for o in self.history()],
            "timeline": self.timeline(),
        }
