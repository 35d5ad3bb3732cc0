"""The tracker store's kept rows (bot/server/stores/tracker_store.py, ``SessionRowCache``): a store that
keeps them loads exactly the tracker a store that keeps nothing loads from the same database, after
its own writes, another process's writes (our store or Rasa's own), session starts with any
timestamps, and evictions (the equivalence test of the speed-up)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from bot.server.stores.tracker_store import STORED, RedactingSQLTrackerStore, latest_session
from tests.pg import fresh_pg_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


def _kwargs(dialect, where):
    if dialect == "sqlite":
        return dict(dialect="sqlite", db=str(where / "shared.db"))
    url = sa.engine.make_url(where)
    return dict(dialect="postgresql", host=url.host, port=url.port, username=url.username, password=url.password, db=url.database)


def snapshot(tracker):
    """Everything a loaded tracker gives Rasa: its state (events, slots, latest message, loop...) and
    what the store recorded about where it was loaded from."""
    if tracker is None:
        return None
    stored = getattr(tracker, STORED)
    return tracker.current_state(EventVerbosity.ALL), [e.as_dict() for e in tracker.events], stored.saved, stored.last_id


def _event(kind: str, i: int, ts: float):
    if kind == "user":
        return UserUttered(f"message {i}", {"name": "inform", "confidence": 1.0}, timestamp=ts)
    if kind == "bot":
        return BotUttered(f"reply {i}", {"buttons": [{"title": "Yes", "payload": "/affirm"}]}, timestamp=ts)
    if kind == "slot":
        return SlotSet("bank", f"Bank {i}", timestamp=ts)
    if kind == "session":
        return SessionStarted(timestamp=ts)
    return ActionExecuted("action_listen", timestamp=ts)


KINDS = ["user", "bot", "slot", "session", "listen"]
# (writer, events): writers 0 and 1 are two caching stores (two processes), 2 is Rasa's own store,
# 3 saves a tracker it did not load (a copy: Rasa's HTTP API); timestamps from a small set so that
# ties and events older than the latest session start happen
OPERATIONS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from([1.0, 2.0, 2.5, 3.0, 5.0, 8.0])), min_size=0, max_size=4),
    ),
    min_size=1,
    max_size=12,
)


async def _check_sequence(domain, kwargs, operations, sender="conv"):
    cached = [RedactingSQLTrackerStore(domain, **kwargs), RedactingSQLTrackerStore(domain, **kwargs)]
    rasas = SQLTrackerStore(domain, **kwargs)
    plain = RedactingSQLTrackerStore(domain, cache_mb=0, **kwargs)  # keeps nothing: every load reads the database
    writers = cached + [rasas]
    trackers = {}
    counter = 0
    for writer, events in operations:
        if writer == 3:
            tracker = (await plain.retrieve(sender)) or DialogueStateTracker(sender, domain.slots)
            tracker = tracker.copy()  # not the object the store loaded: saved the way Rasa does
            store = cached[0]
        else:
            store = writers[writer]
            tracker = trackers.get(writer) or await store.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
        for kind, ts in events:
            counter += 1
            tracker.update(_event(kind, counter, ts))
        await store.save(tracker)
        if writer != 3:
            trackers[writer] = tracker
        if counter % 2:  # sometimes a writer goes on with the tracker it holds, sometimes it loads again
            trackers.clear()
        expected = snapshot(await plain.retrieve(sender))
        for store in cached:
            assert snapshot(await store.retrieve(sender)) == expected
            assert snapshot(await store.retrieve(sender)) == expected  # loaded twice: the second from the kept rows
    for store in cached:
        full = await store.retrieve_full_tracker(sender)
        assert (full and [e.as_dict() for e in full.events]) == (
            (await plain.retrieve_full_tracker(sender))
            and [e.as_dict() for e in (await plain.retrieve_full_tracker(sender)).events]
        )
    return cached


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_a_caching_store_loads_what_the_database_holds(domain, tmp_path_factory, operations):
    where = tmp_path_factory.mktemp("cache")
    asyncio.run(_check_sequence(domain, _kwargs("sqlite", where), operations))


async def test_same_on_postgresql(domain):
    operations = [
        (0, [("listen", 1.0), ("user", 2.0), ("slot", 2.0)]),
        (0, [("bot", 3.0), ("listen", 3.0)]),
        (1, [("user", 5.0)]),  # another process
        (0, [("session", 5.0), ("slot", 5.0), ("listen", 5.0)]),
        (2, [("user", 8.0), ("bot", 2.5)]),  # Rasa's store, an event older than the session start
        (3, [("user", 8.0)]),
        (0, [("bot", 8.0)]),
    ]
    with fresh_pg_database() as url:
        await _check_sequence(domain, _kwargs("postgresql", url), operations)


async def test_loads_come_from_the_kept_rows_until_another_writer_writes(domain, tmp_path):
    kwargs = _kwargs("sqlite", tmp_path)
    ours, other = RedactingSQLTrackerStore(domain, **kwargs), RedactingSQLTrackerStore(domain, **kwargs)
    tracker = DialogueStateTracker("c", domain.slots)
    for event in [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet", "confidence": 1.0})]:
        tracker.update(event)
    await ours.save(tracker)
    hits = ours.cache.hits
    tracker = await ours.retrieve("c")
    assert ours.cache.hits == hits + 1  # what it saved: not read again
    tracker.update(BotUttered("hello"))
    await ours.save(tracker)
    assert (await ours.retrieve("c")).events[-1].as_dict() == tracker.events[-1].as_dict()
    assert ours.cache.hits == hits + 2

    theirs = await other.retrieve("c")
    theirs.update(UserUttered("from the other process", {"name": "inform", "confidence": 1.0}))
    await other.save(theirs)
    misses = ours.cache.misses
    loaded = await ours.retrieve("c")
    assert ours.cache.misses == misses + 1
    assert loaded.events[-1].text == "from the other process"


async def test_the_kept_rows_are_bounded_and_a_store_can_keep_none(domain, tmp_path):
    kwargs = _kwargs("sqlite", tmp_path)
    small = RedactingSQLTrackerStore(domain, cache_mb=0.002, **kwargs)  # ~2 kB: a conversation or two
    for n in range(6):
        tracker = DialogueStateTracker(f"c{n}", domain.slots)
        for i in range(4):
            tracker.update(UserUttered(f"message {i} of {n}", {"name": "inform", "confidence": 1.0}))
        await small.save(tracker)
    assert small.cache._bytes <= small.cache.max_bytes
    assert small.cache.version("c0") is None  # the least recently used went first
    assert [e.text for e in (await small.retrieve("c0")).events] == [f"message {i} of 0" for i in range(4)]
    none = RedactingSQLTrackerStore(domain, cache_mb=0, **kwargs)
    assert (await none.retrieve("c5")) is not None and none.cache.version("c5") is None


def test_latest_session_is_rasas_query():
    rows = [(1.0, False, "a"), (3.0, True, "b"), (2.0, False, "c"), (3.0, False, "d"), (None, False, "e"), (2.5, True, "f")]
    assert latest_session(rows) == [(3.0, True, "b"), (3.0, False, "d")]
    assert latest_session(rows[:1]) == rows[:1]  # no session start: every row


SECRET_TURNS = [
    ["my password is hunter2! and error 102", "ok"],
    ["card 4111 1111 1111 1111 was charged twice", "thanks"],
    ["the code they texted me is 482913", "routing 021000021 account 123456789012"],
    ["still failing"],
]


async def _play_with_secrets(store, sender, domain):
    """Turn by turn as Rasa does (load, add the turn's events, save), with secrets in the messages;
    what the tracker in memory and the database hold after each save."""
    from bot.server.stores import tracker_store

    seen = []
    checked = []
    original = tracker_store.redacted_event

    def counting(event):
        checked.append(event.type_name)
        return original(event)

    tracker_store.redacted_event = counting
    try:
        for n, texts in enumerate(SECRET_TURNS):
            tracker = await store.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
            for i, text in enumerate(texts):
                ts = 1000.0 + 10 * n + i
                tracker.update(ActionExecuted("action_listen", timestamp=ts))
                tracker.update(UserUttered(text, {"name": "inform", "confidence": 1.0}, timestamp=ts))
                tracker.update(SlotSet("bank", text, timestamp=ts))
                tracker.update(BotUttered(f"you said: {text}", timestamp=ts))
            await store.save(tracker)
            seen.append((snapshot(tracker), [e.as_dict() for e in (await store.retrieve(sender)).events]))
    finally:
        tracker_store.redacted_event = original
    return seen, len(checked)


async def test_events_this_store_wrote_are_not_masked_again_with_the_same_result(domain, tmp_path):
    caching = RedactingSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "a.db"))
    plain = RedactingSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "b.db"), cache_mb=0)
    ours, ours_checked = await _play_with_secrets(caching, "s", domain)
    theirs, theirs_checked = await _play_with_secrets(plain, "s", domain)
    assert ours == theirs  # the tracker in memory after each save, and what is loaded back
    assert "hunter2" not in str(ours) and "4111" not in str(ours) and "482913" not in str(ours)
    new_events = sum(4 * len(texts) for texts in SECRET_TURNS)
    assert ours_checked == new_events < theirs_checked  # only each save's new events were checked


async def test_what_another_writer_stored_is_still_masked_when_saved_again(domain, tmp_path):
    rasas = SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "shared.db"))  # masks nothing
    ours = RedactingSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "shared.db"))
    tracker = DialogueStateTracker("x", domain.slots)
    tracker.update(UserUttered("my password is hunter2!", {"name": "inform", "confidence": 1.0}))
    await rasas.save(tracker)
    await ours.retrieve("x")
    loaded = await ours.retrieve("x")  # from the kept rows, which this store did not write
    loaded.update(BotUttered("ok"))
    await ours.save(loaded)
    assert "hunter2" not in str([e.as_dict() for e in loaded.events])
