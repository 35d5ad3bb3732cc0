"""Outage radar: detection from bursts of reports and failed probes, clearing, and back-online notices."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import List

import pytest

from bot.banks.site_prober import ProbeSettings, SiteProber
from bot.db.engine import Database
from bot.outages.notices import Notice, NoticeBook, Notifier
from bot.outages.radar import OutageRadar, RadarSettings
from bot.outbound import OutboundPolicy
from tests.bank_sites import FakeBankSite
from tests.pg import db, pg_url  # noqa: F401 (fixtures)
from tests.radar_streams import simulate


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


SETTINGS = RadarSettings(
    window_minutes=30,
    min_reports=3,
    min_verified_reports=3,
    min_corroborating_failures=1,
    min_probe_failures=2,
    quiet_minutes=10,
    recheck_minutes=5,
    notice_expiry_hours=24,
)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def radar(db):
    return OutageRadar(db, SETTINGS)


def report(radar, n, bank="Chase", diagnosis="bank_unavailable", start=0, verified=True):
    """Reports from ``n`` different conversations (of a verified channel unless told otherwise)."""
    result = None
    for i in range(start, start + n):
        result = radar.record_report(bank, diagnosis, f"conv-{bank}-{i}", verified=verified)
    return result


def test_a_burst_of_reports_from_different_users_is_a_suspected_outage(radar, clock):
    assert report(radar, 2) is None
    assert radar.current("Chase") is None
    outage = report(radar, 1, start=2)
    assert outage is not None and outage.bank == "Chase" and outage.report_count == 3
    assert outage.started_at == clock.now  # the first report of the burst
    assert radar.current("Chase").id == outage.id
    assert [o.bank for o in radar.active()] == ["Chase"]


def test_one_user_repeating_themselves_is_not_a_burst(radar):
    for _ in range(10):
        radar.record_report("Chase", "bank_unavailable", "same-conversation")
    assert radar.current("Chase") is None


def test_fifty_anonymous_reports_of_a_healthy_bank_are_not_an_outage(radar, db):
    radar.record_probe("Chase", "up")
    assert report(radar, 50, verified=False) is None
    assert radar.current("Chase") is None and radar.active() == []
    assert radar.status()["timeline"]["banks"]["Chase"]["reports"][-1] == 50  # still visible to agents


def test_anonymous_reports_corroborated_by_a_failed_probe_are_an_outage(radar):
    assert report(radar, 5, verified=False) is None
    outage = radar.record_probe("Chase", "down")
    assert outage is not None and outage.report_count == 5 and outage.probe_failures == 1
    assert radar.current("Chase").id == outage.id


def test_too_few_anonymous_reports_need_more_than_one_failed_probe(radar):
    report(radar, 2, verified=False)
    assert radar.record_probe("Chase", "down") is None  # 2 reports < min_reports, 1 failure < min_probe_failures
    assert report(radar, 1, verified=False, start=2) is not None  # the third report is corroborated


def test_verified_reports_are_enough_on_their_own(radar):
    assert report(radar, 2) is None
    assert report(radar, 1, start=2) is not None


def test_a_conversation_reporting_again_is_stored_once_per_window(radar, db, clock):
    from sqlalchemy import func, select

    from bot.db.models import BankSignal

    for _ in range(20):
        radar.record_report("Chase", "bank_unavailable", "chatty", client_key="k1")
    with db.reading() as s:
        assert s.execute(select(func.count()).select_from(BankSignal)).scalar_one() == 1
    clock.advance(minutes=31)
    radar.record_report("Chase", "bank_unavailable", "chatty")
    with db.reading() as s:
        rows = s.execute(select(BankSignal.client_key, BankSignal.verified).order_by(BankSignal.id)).all()
    assert rows == [("k1", False), (None, False)]


def test_anonymous_reports_cannot_hold_an_outage_open_against_a_healthy_site(radar, clock):
    report(radar, 3, verified=False)
    radar.record_probe("Chase", "down")
    assert radar.current("Chase") is not None
    clock.advance(minutes=1)
    report(radar, 30, verified=False, start=10)  # the reports keep coming
    radar.record_probe("Chase", "up")
    assert radar.current("Chase") is None


def test_verified_channels_come_from_the_settings():
    settings = RadarSettings.from_mapping({"verified_channels": ["slack"]})
    assert settings.is_verified("slack") and not settings.is_verified("botframework")
    assert not RadarSettings().is_verified("rest") and not RadarSettings().is_verified("socketio")
    assert RadarSettings().is_verified("botframework") and not RadarSettings().is_verified(None)


def test_other_diagnoses_and_other_banks_do_not_count(radar):
    report(radar, 5, diagnosis="credentials")
    report(radar, 2, bank="Barclays")
    assert radar.current("Chase") is None and radar.current("Barclays") is None


def test_failed_probes_are_evidence_but_unknown_never_is(radar):
    for _ in range(5):
        radar.record_probe("Barclays", "unknown")  # maybe our own network: never the bank's fault
    assert radar.current("Barclays") is None
    radar.record_probe("Barclays", "maintenance")
    assert radar.record_probe("Barclays", "down") is not None


def test_it_clears_when_probes_answer_and_reports_calm_down(radar, clock):
    report(radar, 3)
    clock.advance(minutes=5)
    radar.record_probe("Chase", "up")
    assert radar.current("Chase") is not None, "reports in the quiet period still point at an outage"
    clock.advance(minutes=11)
    radar.record_probe("Chase", "up")
    assert radar.current("Chase") is None
    cleared = radar.history()[0]
    assert cleared.cleared_at == clock.now and cleared.report_count == 3


def test_it_clears_when_the_evidence_ages_out(radar, clock):
    report(radar, 3)
    clock.advance(minutes=31)
    assert [o.bank for o in radar.refresh()] == ["Chase"]
    assert radar.current("Chase") is None
    report(radar, 3, start=10)  # a new burst is a new outage
    assert len(radar.history()) == 2


def test_status_has_counts_and_a_timeline(radar, clock):
    report(radar, 3)
    radar.record_probe("Chase", "down")
    status = radar.status()
    assert status["active"][0]["bank"] == "Chase" and status["active"][0]["report_count"] == 3
    chase = status["timeline"]["banks"]["Chase"]
    assert sum(chase["reports"]) == 3 and sum(chase["probe_failures"]) == 1
    assert len(chase["reports"]) == 24


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError):
        RadarSettings.from_mapping({"min_report": 3})


def test_settings_keep_the_confirmation_rule():
    """A floor of 0 would let anonymous reports alone (or nothing at all) declare an outage."""
    for name in ("min_corroborating_failures", "min_reports", "min_verified_reports", "min_probe_failures"):
        with pytest.raises(ValueError, match=name):
            RadarSettings.from_mapping({name: 0})
    with pytest.raises(ValueError, match="surge_factor"):
        RadarSettings(surge_factor=0.5)
    with pytest.raises(ValueError, match="baseline_days"):
        RadarSettings(baseline_days=0.01, window_minutes=30)


# --------------------------------------------------------------------------- at real scale: the baseline
# The production defaults (bankfeed.yml): floors 5 / 1 / 3 / 2, surge_factor 2, surge_sigmas 4, 14 days.
REAL = RadarSettings.from_mapping(
    {
        k: v
        for k, v in __import__("yaml")
        .safe_load((__import__("pathlib").Path(__file__).resolve().parent.parent / "bankfeed.yml").read_text())["outage_radar"]
        .items()
    }
)
BIG = "Chase"  # a million QuickBooks users: always a few Error 102 reports
SMALL = "Vermont Federal Credit Union"


def big_bank_history(db, clock, days=14, **extra):
    """Two weeks of a big bank: 40 reports an hour (10% through Slack / Teams), a probe a minute of
    which 1% fail (a flaky site). It ends a window before now: the current window holds only what the
    test sends."""
    end = clock.now - timedelta(minutes=REAL.window_minutes)
    return simulate(
        db,
        BIG,
        end - timedelta(days=days),
        end,
        reports_per_hour=40,
        verified_share=0.1,
        probes_per_hour=60,
        failure_share=0.01,
        **extra,
    )


def live(radar, clock, minutes, reports=0, verified=0, probes=0, failures=0, bank=BIG, tag="live"):
    """``minutes`` of live traffic through the radar, spread evenly: ``reports`` anonymous and ``verified``
    verified reports (each its own conversation), ``probes`` healthy and ``failures`` failed probes."""
    events = (
        [("report", False)] * reports
        + [("report", True)] * verified
        + [("probe", "up")] * probes
        + [("probe", "down")] * failures
    )
    events = [events[i] for i in sorted(range(len(events)), key=lambda i: (i * 7919) % len(events))] if events else []
    result = None
    for i, (kind, value) in enumerate(events):
        clock.advance(seconds=minutes * 60 / len(events))
        if kind == "report":
            result = radar.record_report(bank, "bank_unavailable", f"{tag}-{bank}-{i}", verified=value)
        else:
            result = radar.record_probe(bank, value)
    return result


def test_the_surge_threshold_is_poisson_style():
    assert REAL.threshold(0, 5) == 5  # no history: the floor
    assert REAL.threshold(0.5, 5) == 5  # 1 report an hour: still the floor
    assert REAL.threshold(2, 5) == 10  # 2x2 + 4*sqrt(2) = 9.66
    assert REAL.threshold(20, 5) == 58  # 40 an hour in a 30-minute window: 2x20 + 4*sqrt(20) = 57.9
    assert REAL.threshold(20, 100) == 100  # the floor always holds


def test_a_big_bank_at_its_usual_rate_is_not_an_outage(db, clock):
    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)
    # its usual half hour: 20 reports (2 verified), a probe a minute and the flaky site's one failure
    assert live(radar, clock, 30, reports=18, verified=2, probes=29, failures=1) is None
    view = radar.assess(BIG)
    assert view["window"]["reports"] == 20 and view["window"]["failures"] == 1
    assert view["window"]["reports"] >= REAL.min_reports  # what the fixed counts alone would have flagged
    assert 35 <= view["baseline"]["reports_per_hour"] <= 45
    assert view["thresholds"]["reports"] >= 50 and not view["suspected"]
    # a busy hour, twice the average, is not an outage either
    assert live(radar, clock, 30, reports=36, verified=4, probes=30, tag="busy") is None
    assert radar.active() == []


def test_a_big_bank_surge_is_an_outage_once_confirmed(db, clock):
    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)
    # a surge of anonymous reports, five times the usual, while the site answers: not confirmed
    assert live(radar, clock, 15, reports=100, probes=15) is None
    assert radar.current(BIG) is None and radar.assess(BIG)["window"]["reports"] == 100
    # the site fails a probe: the reports are corroborated
    outage = radar.record_probe(BIG, "down")
    assert outage is not None and outage.report_count == 100 and outage.probe_failures == 1


def test_a_big_bank_verified_surge_is_an_outage_on_its_own(db, clock):
    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)
    assert live(radar, clock, 15, verified=3, probes=15) is None  # a small bank's floor: normal here
    assert live(radar, clock, 10, verified=8, probes=10, tag="surge") is not None  # 11 verified >= 10
    assert radar.assess(BIG)["thresholds"]["verified"] == 10


def test_a_flaky_big_bank_site_needs_more_failed_probes(db, clock):
    radar = OutageRadar(db, REAL)
    end = clock.now - timedelta(minutes=REAL.window_minutes)
    simulate(
        db, BIG, end - timedelta(days=14), end, reports_per_hour=40, probes_per_hour=60, failure_share=0.1
    )  # 3 failed probes in a usual half hour
    assert live(radar, clock, 30, probes=26, failures=4) is None
    bar = radar.assess(BIG)["thresholds"]
    assert bar["failures"] > 4 and bar["corroborating"] >= 3  # more than the usual (about 3)
    assert live(radar, clock, 10, failures=bar["failures"], tag="down") is not None  # the site is really down


def test_a_small_bank_with_no_history_is_an_outage_on_a_handful_of_confirmed_reports(db, clock):
    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)  # another bank's stream changes nothing for this one
    assert live(radar, clock, 10, verified=2, bank=SMALL) is None
    assert live(radar, clock, 1, verified=1, bank=SMALL, tag="third") is not None
    assert radar.assess(SMALL)["thresholds"]["verified"] == REAL.min_verified_reports


def test_a_small_bank_needs_confirmation_of_anonymous_reports(db, clock):
    radar = OutageRadar(db, REAL)
    radar.record_probe(SMALL, "up")
    assert live(radar, clock, 10, reports=30, bank=SMALL) is None  # five anonymous senders, or thirty: no outage
    assert radar.current(SMALL) is None
    assert radar.record_probe(SMALL, "down") is not None  # corroborated


def test_past_outages_do_not_raise_the_baseline(db, clock):
    from bot.db.models import Outage

    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)
    calm = radar.assess(BIG)["baseline"]["reports_per_hour"]
    # three days ago: a two-hour outage with 2,000 reports
    began = clock.now - timedelta(days=3)
    simulate(db, BIG, began, began + timedelta(hours=2), reports_per_hour=1000, seed=1)
    radar.forget_baseline()
    assert radar.assess(BIG)["baseline"]["reports_per_hour"] > calm + 4  # counted, if it were not an outage
    with db.writing() as s:
        s.add(
            Outage(
                bank=BIG,
                started_at=began,
                detected_at=began,
                cleared_at=began + timedelta(hours=2),
                report_count=2000,
                probe_failures=100,
                last_signal_at=began + timedelta(hours=2),
            )
        )
    radar.forget_baseline()
    assert abs(radar.assess(BIG)["baseline"]["reports_per_hour"] - calm) < 1


def test_a_short_history_does_not_give_a_new_bank_a_high_bar(db, clock):
    radar = OutageRadar(db, REAL)
    simulate(db, SMALL, clock.now - timedelta(hours=2), clock.now, reports_per_hour=5)
    baseline = radar.baseline(SMALL)
    assert baseline.minutes == REAL.baseline_min_hours * 60  # 2 hours of history, divided by 24
    assert radar.assess(SMALL)["thresholds"]["reports"] == REAL.min_reports


def test_a_big_bank_outage_clears_when_reports_are_back_near_usual_and_probes_pass(db, clock):
    radar = OutageRadar(db, REAL)
    big_bank_history(db, clock)
    assert live(radar, clock, 10, verified=12, failures=3) is not None
    clock.advance(minutes=5)
    assert live(radar, clock, 5, verified=6, tag="still") is not None
    radar.record_probe(BIG, "up")
    assert radar.current(BIG) is not None, "verified reports are still surging"
    # back to the usual rate (about one verified report every 15 minutes): once the last ten minutes
    # are quiet it clears, and the surge still in the window does not open it again
    live(radar, clock, 15, reports=10, verified=1, tag="calm")
    assert radar.current(BIG) is None
    assert radar.record_probe(BIG, "up") is None and live(radar, clock, 10, reports=7, verified=1, tag="after") is None
    assert [o.report_count >= 18 and not o.active for o in radar.history()] == [True]
    # a new surge after the clearing is a new outage
    assert live(radar, clock, 5, verified=10, tag="again") is not None and len(radar.history()) == 2


def test_the_baseline_is_cached_and_recomputed(db, clock):
    radar = OutageRadar(db, REAL)
    first = radar.baseline(BIG)
    assert first.reports_per_minute == 0
    big_bank_history(db, clock)
    assert radar.baseline(BIG) is first  # within baseline_cache_seconds
    clock.advance(seconds=REAL.baseline_cache_seconds)
    assert 35 <= radar.baseline(BIG).reports_per_minute * 60 <= 45


# --------------------------------------------------------------------------- back-online notices
@pytest.fixture
def bank_site():
    with FakeBankSite() as site:
        yield site


def make_notifier(db, clock, bank_site, sent: List[Notice]):
    prober = SiteProber(
        ProbeSettings(
            budget=2.0,
            cache_ttl=0.0,
            canary_urls=(bank_site.url("/canary/healthy"),),
            outbound=OutboundPolicy(allow=(f"127.0.0.1:{bank_site.port}",)),
        )
    )

    async def probe(bank, url):
        return (await prober.check(bank, url)).status

    async def deliver(notice):
        sent.append(notice)

    return Notifier(NoticeBook(db, SETTINGS), OutageRadar(db, SETTINGS), probe, deliver), prober


async def test_a_notice_is_sent_once_when_the_bank_answers_again(db, clock, bank_site):
    book = NoticeBook(db, SETTINGS)
    url = bank_site.url("/chase/bank")
    bank_site.set_mode("/chase/bank", "error500")
    first = book.subscribe("conv-1", "rest", "Chase", url)
    assert book.subscribe("conv-1", "rest", "Chase", url).id == first.id  # asking twice is one notice
    sent: List[Notice] = []
    notifier, prober = make_notifier(db, clock, bank_site, sent)
    assert await notifier.run_once() == 0  # not due yet
    clock.advance(minutes=6)
    assert await notifier.run_once() == 0  # due, but the bank is still down: checked again later
    assert bank_site.hits("/chase/bank") == 1
    bank_site.set_mode("/chase/bank", "healthy")
    assert await notifier.run_once() == 0  # postponed by recheck_minutes
    clock.advance(minutes=6)
    assert await notifier.run_once() == 1
    assert sent[0].conversation_id == "conv-1" and sent[0].outcome == "bank_back" and "answering again" in sent[0].text
    clock.advance(minutes=60)
    assert await notifier.run_once() == 0  # never twice
    assert [n.text for n in book.sent_to("conv-1")] == [sent[0].text]
    await prober.aclose()


async def test_two_replicas_racing_send_a_notice_once(db, clock, bank_site):
    NoticeBook(db, SETTINGS).subscribe("conv-2", "socketio", "Chase", bank_site.url("/chase/healthy"))
    clock.advance(minutes=6)
    sent: List[Notice] = []
    (a, pa), (b, pb) = make_notifier(db, clock, bank_site, sent), make_notifier(db, clock, bank_site, sent)
    results = await asyncio.gather(a.run_once(), b.run_once())
    assert sorted(results) == [0, 1] and len(sent) == 1
    await pa.aclose()
    await pb.aclose()


async def test_after_a_day_the_user_is_told_it_is_still_down(db, clock, bank_site):
    NoticeBook(db, SETTINGS).subscribe("conv-3", "rest", "Barclays", bank_site.url("/barclays/maintenance"))
    sent: List[Notice] = []
    notifier, prober = make_notifier(db, clock, bank_site, sent)
    clock.advance(hours=24, minutes=1)
    assert await notifier.run_once() == 1
    assert sent[0].outcome == "expired" and "still wasn't answering" in sent[0].text
    await prober.aclose()


async def test_a_notice_survives_a_restart(tmp_path, clock, bank_site):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    before = Database(url, clock=clock)
    before.migrate()
    NoticeBook(before, SETTINGS).subscribe("conv-4", "rest", "Chase", bank_site.url("/chase/healthy"))
    before.dispose()  # the process goes away

    after = Database(url, clock=clock)  # a new process, same database
    clock.advance(minutes=6)
    sent: List[Notice] = []
    notifier, prober = make_notifier(after, clock, bank_site, sent)
    assert await notifier.run_once() == 1 and sent[0].conversation_id == "conv-4"
    assert await notifier.run_once() == 0
    await prober.aclose()
    after.dispose()


async def test_the_notifier_feeds_its_probes_to_the_radar(db, clock, bank_site):
    radar = OutageRadar(db, SETTINGS)
    report(radar, 3)
    NoticeBook(db, SETTINGS).subscribe("conv-5", "rest", "Chase", bank_site.url("/chase/healthy"))
    clock.advance(minutes=15)
    sent: List[Notice] = []
    notifier, prober = make_notifier(db, clock, bank_site, sent)
    await notifier.run_once()
    assert radar.current("Chase") is None  # a healthy probe after a quiet spell clears the outage
    await prober.aclose()
