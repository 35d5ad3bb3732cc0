"""Outage radar: detection from bursts of reports and failed probes, clearing, and back-online notices."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import List

import pytest

from actions.site_prober import ProbeSettings, SiteProber
from bot.outbound import OutboundPolicy
from bot.handoff.store import HandoffStore
from bot.outages.notices import Notice, NoticeBook, Notifier
from bot.outages.radar import OutageRadar, RadarSettings
from tests.bank_sites import FakeBankSite


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


SETTINGS = RadarSettings(window_minutes=30, min_reports=3, min_verified_reports=3, min_corroborating_failures=1,
                         min_probe_failures=2, quiet_minutes=10, recheck_minutes=5, notice_expiry_hours=24)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = HandoffStore(f"sqlite:///{tmp_path / 'product.db'}", clock=clock)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def radar(store):
    return OutageRadar(store, SETTINGS)


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


def test_fifty_anonymous_reports_of_a_healthy_bank_are_not_an_outage(radar, store):
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


def test_a_conversation_reporting_again_is_stored_once_per_window(radar, store, clock):
    from bot.handoff.models import BankSignal
    from sqlalchemy import func, select

    for _ in range(20):
        radar.record_report("Chase", "bank_unavailable", "chatty", client_key="k1")
    with store.reading() as s:
        assert s.execute(select(func.count()).select_from(BankSignal)).scalar_one() == 1
    clock.advance(minutes=31)
    radar.record_report("Chase", "bank_unavailable", "chatty")
    with store.reading() as s:
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


# --------------------------------------------------------------------------- back-online notices
@pytest.fixture
def bank_site():
    with FakeBankSite() as site:
        yield site


def make_notifier(store, clock, bank_site, sent: List[Notice]):
    prober = SiteProber(ProbeSettings(budget=2.0, cache_ttl=0.0, canary_urls=(bank_site.url("/canary/healthy"),),
                                      outbound=OutboundPolicy(allow=(f"127.0.0.1:{bank_site.port}",))))

    async def probe(bank, url):
        return (await prober.check(bank, url)).status

    async def deliver(notice):
        sent.append(notice)

    return Notifier(NoticeBook(store, SETTINGS), OutageRadar(store, SETTINGS), probe, deliver), prober


async def test_a_notice_is_sent_once_when_the_bank_answers_again(store, clock, bank_site):
    book = NoticeBook(store, SETTINGS)
    url = bank_site.url("/chase/bank")
    bank_site.set_mode("/chase/bank", "error500")
    first = book.subscribe("conv-1", "rest", "Chase", url)
    assert book.subscribe("conv-1", "rest", "Chase", url).id == first.id  # asking twice is one notice
    sent: List[Notice] = []
    notifier, prober = make_notifier(store, clock, bank_site, sent)
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


async def test_two_replicas_racing_send_a_notice_once(store, clock, bank_site):
    NoticeBook(store, SETTINGS).subscribe("conv-2", "socketio", "Chase", bank_site.url("/chase/healthy"))
    clock.advance(minutes=6)
    sent: List[Notice] = []
    (a, pa), (b, pb) = make_notifier(store, clock, bank_site, sent), make_notifier(store, clock, bank_site, sent)
    results = await asyncio.gather(a.run_once(), b.run_once())
    assert sorted(results) == [0, 1] and len(sent) == 1
    await pa.aclose()
    await pb.aclose()


async def test_after_a_day_the_user_is_told_it_is_still_down(store, clock, bank_site):
    NoticeBook(store, SETTINGS).subscribe("conv-3", "rest", "Barclays", bank_site.url("/barclays/maintenance"))
    sent: List[Notice] = []
    notifier, prober = make_notifier(store, clock, bank_site, sent)
    clock.advance(hours=24, minutes=1)
    assert await notifier.run_once() == 1
    assert sent[0].outcome == "expired" and "still wasn't answering" in sent[0].text
    await prober.aclose()


async def test_a_notice_survives_a_restart(tmp_path, clock, bank_site):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    before = HandoffStore(url, clock=clock)
    before.migrate()
    NoticeBook(before, SETTINGS).subscribe("conv-4", "rest", "Chase", bank_site.url("/chase/healthy"))
    before.dispose()  # the process goes away

    after = HandoffStore(url, clock=clock)  # a new process, same database
    clock.advance(minutes=6)
    sent: List[Notice] = []
    notifier, prober = make_notifier(after, clock, bank_site, sent)
    assert await notifier.run_once() == 1 and sent[0].conversation_id == "conv-4"
    assert await notifier.run_once() == 0
    await prober.aclose()
    after.dispose()


async def test_the_notifier_feeds_its_probes_to_the_radar(store, clock, bank_site):
    radar = OutageRadar(store, SETTINGS)
    report(radar, 3)
    NoticeBook(store, SETTINGS).subscribe("conv-5", "rest", "Chase", bank_site.url("/chase/healthy"))
    clock.advance(minutes=15)
    sent: List[Notice] = []
    notifier, prober = make_notifier(store, clock, bank_site, sent)
    await notifier.run_once()
    assert radar.current("Chase") is None  # a healthy probe after a quiet spell clears the outage
    await prober.aclose()
