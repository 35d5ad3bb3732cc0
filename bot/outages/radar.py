"""Detects suspected bank outages from surges of reports and failed probes, and clears them.

Every diagnosis that names a bank and every fresh bank-site probe is recorded as a signal (table
``bank_signals``). A suspected outage changes other customers' conversations (the shortened path),
so reports alone, which anyone can send, are never enough. A bank is a **suspected outage** when,
within the sliding window (``window_minutes``):

* its failed probes (``down`` or ``maintenance``; ``unknown`` never counts: it may be our own
  network) reach the **failure threshold**, or
* distinct **verified** sources (users of an authenticated channel, Slack or Teams,
  ``verified_channels``) reach the **verified threshold**, or
* distinct sources (anonymous REST / widget sessions included) reach the **report threshold** and
  its failed probes reach the **corroboration threshold**: at least ``min_corroborating_failures``
  and more than the bank's window usually has.

A source is a conversation; each conversation's report of a bank is stored once per window, and a
client address over ``outage_reports_per_address`` (bot/ratelimit.py) is not recorded at all.

**Thresholds follow the bank's own baseline.** A big bank always has some reports; a fixed count
would flag it all day. Each threshold is::

    threshold(λ, floor) = max(floor, ⌊factor·λ + k·√λ⌋ + 1)

where λ is how many the bank usually has in a span of that length: its rate over the look-back
(``baseline_days``; the look-back ends where the current window starts and leaves out the periods
that were outages of that bank, so an outage never raises its own bar) times the span. Reports from
independent customers arriving at random form a Poisson stream, whose count in a window has mean λ
and standard deviation √λ: ``k`` (``surge_sigmas``) standard deviations above the usual keeps chance
fluctuations of a steady stream out, and ``factor`` (``surge_factor``) asks for a real relative surge
on top, because real streams are burstier than Poisson (a busy morning against the 14-day average,
Mondays against Sundays: the flat look-back mean does not model the time of day). The floors
(``min_reports``, ``min_verified_reports``, ``min_probe_failures``, ``min_corroborating_failures``)
are what a small bank, or one without history, needs: λ is about 0 there and the floor decides. The
look-back's rate is divided by at least ``baseline_min_hours``, so a bank seen for the first time an
hour ago does not get a high bar from that one hour. Probe failures are a rate per minute like the
reports: the site prober checks a bank at most once a minute (``site_probe.cache_ttl``), so a busy
bank's probe count does not grow with a surge of its users.

It clears once a probe answers again, no probe failed since, and the verified reports of the last
``quiet_minutes`` are back under their threshold for that span (anonymous reports alone cannot hold
an outage open against a site that answers), or when the evidence in the window is under every
threshold. A new outage of the same bank then needs evidence from after the clearing. The baseline is computed with one grouped query per bank and kept ``baseline_cache_seconds``
in the process. Settings live in ``bankfeed.yml`` (``outage_radar``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy import case, func, select

from bot.db.engine import Database
from bot.db.models import BankSignal, Outage

REPORTING_DIAGNOSES = ("bank_unavailable", "connection_failure")
FAILED_PROBES = ("down", "maintenance")
HEALTHY_PROBES = ("up", "slow")


@dataclass(frozen=True)
class RadarSettings:
    window_minutes: float = 30
    # the floors: what a bank with no history needs (see the module docstring)
    min_reports: int = 5  # distinct sources reporting the bank unavailable in the window...
    min_corroborating_failures: int = 1  # ...with at least this many failed probes (anonymous reports)
    min_verified_reports: int = 3  # distinct verified sources: enough on their own
    min_probe_failures: int = 2  # failed probes in the window: enough on their own
    verified_channels: Tuple[str, ...] = ("slack", "botframework")
    quiet_minutes: float = 10  # after a healthy probe, verified reports in this span must be under their threshold
    # the baseline: a bank's usual rates, and how far above them a surge is
    baseline_days: float = 14  # the look-back (ending where the window starts, outages left out)
    baseline_min_hours: float = 24  # a shorter history is divided by this many hours (a new bank's bar stays low)
    surge_factor: float = 2.0  # a surge is above factor x the usual count...
    surge_sigmas: float = 4.0  # ...plus this many Poisson standard deviations (sqrt of the usual count)
    baseline_cache_seconds: float = 300  # a bank's baseline is recomputed at most this often per process
    recheck_minutes: float = 5  # how often a notice's bank is probed again
    notice_expiry_hours: float = 24
    notifier_interval_seconds: float = 30

    def __post_init__(self) -> None:
        for name in ("min_reports", "min_corroborating_failures", "min_verified_reports", "min_probe_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                # 0 would let anonymous reports alone declare an outage: the confirmation rule needs >= 1
                raise ValueError(f"outage_radar.{name} must be a whole number of at least 1, not {value!r}")
        for name in ("window_minutes", "quiet_minutes", "baseline_days", "baseline_min_hours"):
            if not getattr(self, name) > 0:
                raise ValueError(f"outage_radar.{name} must be positive, not {getattr(self, name)!r}")
        if not self.surge_factor >= 1:
            raise ValueError(f"outage_radar.surge_factor must be at least 1, not {self.surge_factor!r}")
        if not self.surge_sigmas >= 0 or not self.baseline_cache_seconds >= 0:
            raise ValueError("outage_radar.surge_sigmas and baseline_cache_seconds must not be negative")
        if self.baseline_days * 24 * 60 <= self.window_minutes:
            raise ValueError("outage_radar.baseline_days must reach further back than window_minutes")

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

    def threshold(self, usual: float, floor: int) -> int:
        """The smallest count that is a surge over ``usual`` (the count expected in the span): at least
        ``floor``, and above ``surge_factor * usual + surge_sigmas * sqrt(usual)``."""
        if usual <= 0:
            return floor
        return max(floor, math.floor(self.surge_factor * usual + self.surge_sigmas * math.sqrt(usual)) + 1)


@dataclass(frozen=True)
class Baseline:
    """A bank's usual rates (per minute) over the look-back, outside its outages and the current window."""

    reports_per_minute: float = 0.0  # reports of the bank unavailable (stored once per conversation and window)
    verified_per_minute: float = 0.0  # of which through a verified channel
    failures_per_minute: float = 0.0  # failed probes
    minutes: float = 0.0  # the span the counts were divided by
    computed_at: Optional[datetime] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "reports_per_hour": round(self.reports_per_minute * 60, 3),
            "verified_per_hour": round(self.verified_per_minute * 60, 3),
            "failures_per_hour": round(self.failures_per_minute * 60, 3),
            "hours": round(self.minutes / 60, 2),
        }


@dataclass(frozen=True)
class Thresholds:
    """The counts that are a surge for one bank right now (the window's, and the quiet span's)."""

    reports: int  # distinct sources in the window (with corroboration)...
    corroborating: int  # ...and this many failed probes
    verified: int  # distinct verified sources in the window: enough on their own
    failures: int  # failed probes in the window: enough on their own
    quiet_verified: int  # verified sources within quiet_minutes that still hold an outage open

    @classmethod
    def of(cls, baseline: Baseline, cfg: RadarSettings) -> "Thresholds":
        window = cfg.window_minutes
        usual_failures = baseline.failures_per_minute * window
        return cls(
            reports=cfg.threshold(baseline.reports_per_minute * window, cfg.min_reports),
            # more failures than the window usually has (a flaky site's usual failure corroborates nothing)
            corroborating=max(cfg.min_corroborating_failures, math.floor(usual_failures) + 1),
            verified=cfg.threshold(baseline.verified_per_minute * window, cfg.min_verified_reports),
            failures=cfg.threshold(usual_failures, cfg.min_probe_failures),
            quiet_verified=cfg.threshold(baseline.verified_per_minute * cfg.quiet_minutes, cfg.min_verified_reports),
        )

    def to_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Evidence:
    """What the current window (and the quiet span at its end) holds for one bank."""

    reports: int = 0  # distinct sources reporting it unavailable
    verified: int = 0  # distinct verified sources
    failures: int = 0  # failed probes
    first: Optional[datetime] = None  # the first report or failed probe of the window
    quiet_verified: int = 0  # distinct verified sources within quiet_minutes
    last_failure: Optional[datetime] = None
    last_probe: Optional[Tuple[str, datetime]] = None  # the latest probe that was not "unknown" (any age)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "reports": self.reports,
            "verified": self.verified,
            "failures": self.failures,
            "quiet_verified": self.quiet_verified,
            "last_probe": self.last_probe[0] if self.last_probe else None,
        }


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


_S = BankSignal
#: at most this many outage periods are left out of a baseline (closer ones are joined into one)
MAX_EXCLUDED_PERIODS = 20
MAX_CACHED_BASELINES = 10_000


def _is_report() -> Any:
    return sa.and_(_S.kind == "report", _S.status.in_(REPORTING_DIAGNOSES))


def _is_failure() -> Any:
    return sa.and_(_S.kind == "probe", _S.status.in_(FAILED_PROBES))


def _count_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _excluded_periods(periods: Sequence[Tuple[datetime, datetime]]) -> List[Tuple[datetime, datetime]]:
    """Overlapping periods merged, in order; beyond MAX_EXCLUDED_PERIODS the closest neighbours are joined
    (the calm gap between them is left out too: its signals and its time, so the rate stays fair)."""
    merged: List[Tuple[datetime, datetime]] = []
    for a, b in sorted(periods):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    while len(merged) > MAX_EXCLUDED_PERIODS:
        i = min(range(len(merged) - 1), key=lambda j: merged[j + 1][0] - merged[j][1])
        merged[i : i + 2] = [(merged[i][0], merged[i + 1][1])]
    return merged


class OutageRadar:
    """Records signals and keeps the ``outages`` table up to date (blocking calls: run them in a thread
    from async code). One instance per process: it caches each bank's baseline."""

    def __init__(self, db: Database, settings: Optional[RadarSettings] = None):
        self.db = db
        self.settings = settings or RadarSettings()
        self._baselines: Dict[str, Baseline] = {}
        self._baselines_lock = threading.Lock()

    # ------------------------------------------------------------------ signals
    def record_report(
        self, bank: str, diagnosis: str, conversation_id: Optional[str], verified: bool = False, client_key: Optional[str] = None
    ) -> Optional[OutageView]:
        """Records a diagnosis naming ``bank`` (once per conversation, bank and window); returns the
        bank's outage if one is (now) suspected. ``verified``: the report came through an
        authenticated channel; ``client_key``: the reporting client's pseudonym, when known."""
        return self._record(bank, "report", diagnosis, conversation_id, verified, client_key)

    def record_probe(self, bank: str, status: str) -> Optional[OutageView]:
        """Records a fresh (not cached) probe of the bank's site."""
        return self._record(bank, "probe", status, None)

    def _record(
        self,
        bank: str,
        kind: str,
        status: str,
        conversation_id: Optional[str],
        verified: bool = False,
        client_key: Optional[str] = None,
    ) -> Optional[OutageView]:
        now = self.db.now()
        baseline = self.baseline(bank, now)  # before the write transaction: it may read two weeks of signals
        with self.db.writing() as s:
            if not (kind == "report" and self._reported_already(s, bank, status, conversation_id, now)):
                s.add(
                    BankSignal(
                        bank=bank,
                        kind=kind,
                        status=status,
                        conversation_id=conversation_id,
                        created_at=now,
                        verified=bool(verified),
                        client_key=client_key,
                    )
                )
                s.flush()
            outage = self._evaluate(s, bank, now, baseline)
            return _view(outage) if outage is not None and outage.cleared_at is None else None

    def _reported_already(self, s: Any, bank: str, status: str, conversation_id: Optional[str], now: datetime) -> bool:
        """True if this conversation already reported ``bank`` (same diagnosis) within the window."""
        if conversation_id is None:
            return False
        since = now - timedelta(minutes=self.settings.window_minutes)
        return (
            s.execute(
                select(_S.id)
                .where(
                    _S.bank == bank,
                    _S.kind == "report",
                    _S.status == status,
                    _S.conversation_id == conversation_id,
                    _S.created_at >= since,
                )
                .limit(1)
            ).first()
            is not None
        )

    # ------------------------------------------------------------------ the baseline
    def baseline(self, bank: str, now: Optional[datetime] = None) -> Baseline:
        """The bank's usual rates (cached ``baseline_cache_seconds``; an outage opening or clearing
        drops the bank's entry)."""
        now = now or self.db.now()
        with self._baselines_lock:
            cached = self._baselines.get(bank)
        if (
            cached is not None
            and cached.computed_at is not None
            and timedelta(0) <= now - cached.computed_at < timedelta(seconds=self.settings.baseline_cache_seconds)
        ):
            return cached
        with self.db.reading() as s:
            fresh = self._compute_baseline(s, bank, now)
        with self._baselines_lock:
            if len(self._baselines) >= MAX_CACHED_BASELINES:  # any text can name a bank: keep the cache bounded
                self._baselines.clear()
            self._baselines[bank] = fresh
        return fresh

    def forget_baseline(self, bank: Optional[str] = None) -> None:
        with self._baselines_lock:
            if bank is None:
                self._baselines.clear()
            else:
                self._baselines.pop(bank, None)

    def _compute_baseline(self, s: Any, bank: str, now: datetime) -> Baseline:
        """One grouped query over the look-back ``[now - baseline_days, window start)`` of one bank
        (the ``(bank, created_at)`` index), leaving out the bank's outages (a short second query)."""
        cfg = self.settings
        end = now - timedelta(minutes=cfg.window_minutes)
        start = now - timedelta(days=cfg.baseline_days)
        outages = s.execute(
            select(Outage.started_at, Outage.cleared_at).where(
                Outage.bank == bank, Outage.started_at < end, sa.or_(Outage.cleared_at.is_(None), Outage.cleared_at > start)
            )
        ).all()
        excluded = _excluded_periods([(a, b or now) for a, b in outages])
        calm = sa.and_(sa.true(), *[sa.not_(sa.and_(_S.created_at >= a, _S.created_at <= b)) for a, b in excluded])
        report, failure = _is_report(), _is_failure()
        reports, verified, failures, first_seen = s.execute(
            select(
                _count_where(sa.and_(report, calm)),
                _count_where(sa.and_(report, _S.verified.is_(True), calm)),
                _count_where(sa.and_(failure, calm)),
                func.min(_S.created_at),
            ).where(_S.bank == bank, _S.created_at >= start, _S.created_at < end)
        ).one()
        if first_seen is None:
            return Baseline(computed_at=now, minutes=cfg.baseline_min_hours * 60)
        observed_from = max(start, first_seen)
        observed = (end - observed_from).total_seconds()
        for a, b in excluded:
            overlap = (min(b, end) - max(a, observed_from)).total_seconds()
            observed -= max(0.0, overlap)
        minutes = max(cfg.baseline_min_hours * 60, observed / 60)
        return Baseline(int(reports) / minutes, int(verified) / minutes, int(failures) / minutes, minutes, now)

    # ------------------------------------------------------------------ detection
    def _evidence(self, s: Any, bank: str, now: datetime, after: Optional[datetime] = None) -> Evidence:
        """The window's counts in one grouped query (plus the latest probe, an index seek); ``after``:
        only signals from then on count (the end of the bank's last outage)."""
        cfg = self.settings
        window_start = now - timedelta(minutes=cfg.window_minutes)
        if after is not None and after > window_start:
            window_start = after
        quiet_start = now - timedelta(minutes=cfg.quiet_minutes)
        report, failure, verified = _is_report(), _is_failure(), _S.verified.is_(True)
        in_window, in_quiet = _S.created_at >= window_start, _S.created_at >= quiet_start
        # a source is a conversation (how many one client may report is limited before they are
        # recorded: outage_reports_per_address in bot/ratelimit.py)
        sources = lambda *where: func.count(sa.distinct(case((sa.and_(*where), _S.conversation_id))))  # noqa: E731
        reports, verified_sources, failures, first, quiet_verified, last_failure = s.execute(
            select(
                sources(report, in_window),
                sources(report, verified, in_window),
                _count_where(sa.and_(failure, in_window)),
                func.min(case((sa.and_(sa.or_(report, failure), in_window), _S.created_at))),
                sources(report, verified, in_quiet),
                func.max(case((sa.and_(failure, in_window), _S.created_at))),
            ).where(_S.bank == bank, _S.created_at >= min(window_start, quiet_start))
        ).one()
        last_probe = s.execute(
            select(_S.status, _S.created_at)
            .where(_S.bank == bank, _S.kind == "probe", _S.status != "unknown")
            .order_by(_S.created_at.desc(), _S.id.desc())
            .limit(1)
        ).first()
        return Evidence(
            int(reports),
            int(verified_sources),
            int(failures),
            first,
            int(quiet_verified),
            last_failure,
            tuple(last_probe) if last_probe else None,
        )

    @staticmethod
    def _suspected(window: Evidence, bar: Thresholds) -> bool:
        """Confirmed evidence: failed probes, verified reports, or reports corroborated by failed probes."""
        return (
            window.failures >= bar.failures
            or window.verified >= bar.verified
            or (window.reports >= bar.reports and window.failures >= bar.corroborating)
        )

    def _evaluate(self, s: Any, bank: str, now: datetime, baseline: Baseline) -> Optional[Outage]:
        outage = s.execute(select(Outage).where(Outage.bank == bank, Outage.cleared_at.is_(None))).scalar_one_or_none()
        # a new outage needs new evidence: what came before the last one cleared was answered by then
        # (a healthy probe), and must not open it again at the next signal
        after = (
            None if outage is not None else s.execute(select(func.max(Outage.cleared_at)).where(Outage.bank == bank)).scalar_one()
        )
        window = self._evidence(s, bank, now, after)
        bar = Thresholds.of(baseline, self.settings)
        suspected = self._suspected(window, bar)
        if outage is None:
            if suspected:
                outage = Outage(
                    bank=bank,
                    started_at=window.first or now,
                    detected_at=now,
                    cleared_at=None,
                    report_count=window.reports,
                    probe_failures=window.failures,
                    last_signal_at=now,
                )
                s.add(outage)
                s.flush()
                self.forget_baseline(bank)
            return outage
        outage.report_count = max(outage.report_count, window.reports)
        outage.probe_failures = max(outage.probe_failures, window.failures)
        outage.last_signal_at = now
        if self._recovered(window, bar, suspected):
            outage.cleared_at = now
            self.forget_baseline(bank)
        return outage

    @staticmethod
    def _recovered(window: Evidence, bar: Thresholds, suspected: bool) -> bool:
        if not suspected:
            return True  # the evidence is back under every threshold (or has aged out of the window)
        if window.last_probe is None or window.last_probe[0] not in HEALTHY_PROBES:
            return False
        failed_since = window.last_failure is not None and window.last_failure >= window.last_probe[1]
        # anonymous reports alone cannot hold an outage open against a site that answers again
        return window.quiet_verified < bar.quiet_verified and not failed_since

    def refresh(self, bank: Optional[str] = None) -> List[OutageView]:
        """Re-evaluates open outages (all, or one bank's) so old evidence ages out; returns those cleared."""
        now = self.db.now()
        query = select(Outage.bank).where(Outage.cleared_at.is_(None))
        if bank:
            query = query.where(Outage.bank == bank)
        with self.db.reading() as s:
            banks = list(s.execute(query).scalars())
        baselines = {b: self.baseline(b, now) for b in banks}
        cleared = []
        with self.db.writing() as s:
            for name in banks:
                outage = self._evaluate(s, name, now, baselines[name])
                if outage is not None and outage.cleared_at is not None:
                    cleared.append(_view(outage))
        return cleared

    def assess(self, bank: str) -> Dict[str, Any]:
        """Why a bank is or is not a suspected outage right now: the window, the baseline, the thresholds."""
        now = self.db.now()
        baseline = self.baseline(bank, now)
        with self.db.reading() as s:
            open_ = s.execute(select(Outage.id).where(Outage.bank == bank, Outage.cleared_at.is_(None))).first()
            after = None if open_ else s.execute(select(func.max(Outage.cleared_at)).where(Outage.bank == bank)).scalar_one()
            window = self._evidence(s, bank, now, after)
        bar = Thresholds.of(baseline, self.settings)
        return {
            "bank": bank,
            "window": window.to_dict(),
            "baseline": baseline.to_dict(),
            "thresholds": bar.to_dict(),
            "suspected": self._suspected(window, bar),
        }

    # ------------------------------------------------------------------ queries
    def current(self, bank: str) -> Optional[OutageView]:
        with self.db.reading() as s:
            outage = s.execute(select(Outage).where(Outage.bank == bank, Outage.cleared_at.is_(None))).scalar_one_or_none()
            return _view(outage) if outage else None

    def active(self) -> List[OutageView]:
        with self.db.reading() as s:
            rows = s.execute(select(Outage).where(Outage.cleared_at.is_(None)).order_by(Outage.started_at)).scalars()
            return [_view(o) for o in rows]

    def history(self, days: float = 7) -> List[OutageView]:
        with self.db.reading() as s:
            since = self.db.now() - timedelta(days=days)
            rows = s.execute(
                select(Outage)
                .where(sa.or_(Outage.cleared_at.is_(None), Outage.cleared_at >= since))
                .order_by(Outage.started_at.desc())
            ).scalars()
            return [_view(o) for o in rows]

    def timeline(self, hours: float = 24, bucket_minutes: int = 60) -> Dict[str, Any]:
        """Reports and failed probes per bank in time buckets, for the console's chart (counted by the
        database: one grouped query, whatever the number of signals)."""
        buckets = max(1, int(hours * 60 // bucket_minutes))
        with self.db.reading() as s:
            now = self.db.now()
            since = now - timedelta(hours=hours)
            edges = [since + timedelta(minutes=bucket_minutes * (i + 1)) for i in range(buckets - 1)]
            bucket = (
                case(*[(_S.created_at < edge, i) for i, edge in enumerate(edges)], else_=buckets - 1) if edges else sa.literal(0)
            ).label("bucket")
            what = case((_S.kind == "report", "reports"), else_="probe_failures").label("what")
            rows = s.execute(
                select(_S.bank, what, bucket, func.count())
                .where(_S.created_at >= since, sa.or_(_is_report(), _is_failure()))
                .group_by(_S.bank, sa.literal_column("what"), sa.literal_column("bucket"))
            ).all()
        series: Dict[str, Dict[str, List[int]]] = {}
        for bank, kind, index, count in rows:
            per_bank = series.setdefault(bank, {"reports": [0] * buckets, "probe_failures": [0] * buckets})
            per_bank[kind][int(index)] += int(count)
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
