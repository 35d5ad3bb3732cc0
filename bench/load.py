"""Closed-loop load over the REST channel, and /proc sampling of the server processes.

``run_level(url, script, concurrency, duration)``: ``concurrency`` workers, each running whole
conversations (a fresh ``sender`` per conversation, ``script`` turn by turn) back to back until the
level's ``duration`` is over. A worker sends its next message only when the previous answer arrived
(closed loop), so throughput is what the server sustains at that concurrency. Every request's
latency is recorded; non-200 answers, transport errors / timeouts and non-JSON bodies are errors.
With ``sessions=True`` (the product, whose REST senders are server-issued) each conversation first
gets its sender from ``POST /webhooks/rest/session``; those requests are counted
(``sessions_created``) but not in the message latencies, so the product's and the starter's
figures measure the same thing (the stock starter has no such endpoint).

``ProcessSampler``: RSS and CPU time of every process in the servers' sessions (the helpers in
``tests.servers`` start each server in a new session, so the session is the server's process
tree), read from ``/proc`` every ``interval`` seconds. No psutil needed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import aiohttp
import httpx

from bench import scripts

# The scripts (each turn with the text its answer must contain): bench/scripts.py
PRODUCT_SCRIPT = scripts.BUTTONS
STARTER_SCRIPT = scripts.STARTER


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Nearest-rank-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize_latencies(latencies_ms: Sequence[float]) -> Dict[str, Optional[float]]:
    r = lambda v: None if v is None else round(v, 1)  # noqa: E731
    return {
        "p50_ms": r(percentile(latencies_ms, 50)),
        "p95_ms": r(percentile(latencies_ms, 95)),
        "p99_ms": r(percentile(latencies_ms, 99)),
        "mean_ms": r(statistics.fmean(latencies_ms)) if latencies_ms else None,
        "max_ms": r(max(latencies_ms)) if latencies_ms else None,
    }


@dataclass
class _Tally:
    latencies_ms: List[float] = field(default_factory=list)
    errors: Dict[str, int] = field(default_factory=dict)
    empty_replies: int = 0
    conversations_completed: int = 0
    sessions_created: int = 0
    last_finish: float = 0.0
    finish_times: List[float] = field(default_factory=list)  # time.monotonic() of each answered request
    wrong_path_examples: Dict[str, List[str]] = field(default_factory=dict)  # message -> what the bot said

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _new_sender(session: aiohttp.ClientSession, url: str, tally: _Tally) -> Optional[str]:
    """A server-issued REST sender (``POST /webhooks/rest/session``), or None (counted as an error)."""
    try:
        async with session.post(url.rsplit("/", 1)[0] + "/session") as response:
            raw = await response.read()
            if response.status != 201:
                tally.error(f"session_http_{response.status}")
                return None
            tally.sessions_created += 1
            return json.loads(raw)["sender"]
    except asyncio.TimeoutError:
        tally.error("Timeout")
    except (aiohttp.ClientError, ValueError, KeyError) as exc:
        tally.error(type(exc).__name__)
    return None


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    script: Sequence[Tuple[str, Optional[str]]],
    sender_prefix: str,
    deadline: float,
    tally: _Tally,
    sessions: bool = False,
) -> None:
    for conversation in itertools.count():
        sender: Optional[str] = f"{sender_prefix}-{conversation}"
        if sessions:
            if time.monotonic() >= deadline:
                return
            sender = await _new_sender(session, url, tally)
            if sender is None:
                continue
        for text, expected in script:
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            on_path = True
            try:
                async with session.post(url, json={"sender": sender, "message": text}) as response:
                    raw = await response.read()
                    elapsed = (time.perf_counter() - started) * 1000.0
                    if response.status != 200:
                        tally.error(f"http_{response.status}")
                    else:
                        body = json.loads(raw)
                        if not scripts.reply_matches(body, expected):
                            # the conversation left the script's path: an error, and a new conversation
                            tally.error("wrong_path")
                            tally.wrong_path_examples.setdefault(text, [r.get("text", "")[:120] for r in body][:3])
                            on_path = False
                        else:
                            tally.latencies_ms.append(elapsed)
                            tally.finish_times.append(time.monotonic())
                        if not body:
                            tally.empty_replies += 1
            except asyncio.TimeoutError:
                tally.error("Timeout")
            except (aiohttp.ClientError, ValueError) as exc:
                tally.error(type(exc).__name__)
            tally.last_finish = max(tally.last_finish, time.monotonic())
            if not on_path:
                break
        else:
            tally.conversations_completed += 1


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run_level(
    base_url: str,
    script: Sequence[Tuple[str, Optional[str]]],
    concurrency: int,
    duration: float,
    sender_prefix: str,
    timeout: float,
    finish_times: Optional[List[float]] = None,
    sessions: bool = False,
) -> Dict[str, object]:
    # aiohttp, not httpx, for the load: measured against a trivial local server at 50 connections,
    # httpx's AsyncClient took 8.3 ms of CPU per request and aiohttp's 0.5 ms. On 2 cores shared with
    # the servers, httpx alone took up to a core at the product's rate, capping what was measured.
    url = f"{base_url}/webhooks/rest/webhook"
    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=concurrency)
    cpu_before = _own_cpu_seconds()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False
    ) as session:
        start = time.monotonic()
        deadline = start + duration
        await asyncio.gather(
            *(_worker(session, url, script, f"{sender_prefix}-w{i}", deadline, tally, sessions) for i in range(concurrency))
        )
    loadgen_cpu = _own_cpu_seconds() - cpu_before
    elapsed = max(tally.last_finish, start + 1e-9) - start
    if finish_times is not None:
        finish_times.extend(tally.finish_times)
    ok = len(tally.latencies_ms)
    errors = sum(tally.errors.values())
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "error_kinds": dict(tally.errors),
        **({"wrong_path_examples": tally.wrong_path_examples} if tally.wrong_path_examples else {}),
        "empty_replies": tally.empty_replies,
        "conversations_completed": tally.conversations_completed,
        **({"sessions_created": tally.sessions_created} if sessions else {}),
        "msgs_per_s": round(ok / elapsed, 2) if elapsed > 0 else None,
        # the bench process itself: load generator + the fake bank site (same process)
        "loadgen_cpu_ms_per_msg": round(loadgen_cpu * 1000 / ok, 2) if ok else None,
        **summarize_latencies(tally.latencies_ms),
    }


def run_level(
    base_url: str,
    script: Sequence[Tuple[str, Optional[str]]],
    concurrency: int,
    duration: float,
    sender_prefix: str,
    timeout: float = 60.0,
    finish_times: Optional[List[float]] = None,
    sessions: bool = False,
) -> Dict[str, object]:
    """One level of load; ``finish_times`` (if given) receives the monotonic time of every answer;
    ``sessions``: each conversation's sender is issued by ``POST /webhooks/rest/session`` first."""
    return asyncio.run(_run_level(base_url, script, concurrency, duration, sender_prefix, timeout, finish_times, sessions))


def warm_up(
    base_url: str, script: Sequence[Tuple[str, Optional[str]]], sender_prefix: str, conversations: int = 2, sessions: bool = False
) -> None:
    """A couple of unrecorded conversations: first-request costs (graph tracing, pools) out of the way."""
    with httpx.Client(timeout=120, trust_env=False) as client:
        for n in range(conversations):
            sender = f"{sender_prefix}-{n}"
            if sessions:
                r = client.post(f"{base_url}/webhooks/rest/session")
                r.raise_for_status()
                sender = r.json()["sender"]
            for text, expected in script:
                r = client.post(f"{base_url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
                r.raise_for_status()
                if not scripts.reply_matches(r.json(), expected):  # the bench would measure another path
                    raise RuntimeError(f"warm-up: {text!r} was not answered with {expected!r}: {r.json()}")


def parse_timings(base_url: str, token: str, texts: Iterable[str], rounds: int) -> Dict[str, object]:
    """``POST /model/parse`` (NLU only), one request at a time on an idle server."""
    texts = list(texts)
    latencies = []
    with httpx.Client(timeout=60, trust_env=False) as client:
        for text in texts:  # one unrecorded pass
            client.post(f"{base_url}/model/parse", params={"token": token}, json={"text": text}).raise_for_status()
        for _ in range(rounds):
            for text in texts:
                started = time.perf_counter()
                client.post(f"{base_url}/model/parse", params={"token": token}, json={"text": text}).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000.0)
    return {"messages": len(latencies), **summarize_latencies(latencies)}


# --------------------------------------------------------------------------- /proc sampling

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: str) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    # the command name may contain spaces or parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def session_usage(session_ids: Iterable[int]) -> Dict[int, Dict[str, float]]:
    """Per session: ``rss_mb`` (sum over its processes), ``cpu_s`` (user+system), ``processes``."""
    wanted = set(session_ids)
    out = {sid: {"rss_mb": 0.0, "cpu_s": 0.0, "processes": 0} for sid in wanted}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # fields[0] is 'state' (field 3 of stat): session = field 6, utime/stime = 14/15, rss = 24
        sid = int(fields[3])
        if sid not in wanted:
            continue
        out[sid]["rss_mb"] += int(fields[21]) * _PAGE / 1e6
        out[sid]["cpu_s"] += (int(fields[11]) + int(fields[12])) / _TICKS
        out[sid]["processes"] += 1
    return out


class ProcessSampler:
    """Samples RSS of named process trees (sessions) in a thread; ``mark()`` returns the peak since
    the previous mark, per tree and for the sum of the trees at the same instant."""

    def __init__(self, sessions: Dict[str, int], interval: float = 0.2):
        self.sessions = sessions
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._overall: Dict[str, float] = {}
        self._window: Dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> "ProcessSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> Dict[str, Dict[str, float]]:
        usage = session_usage(self.sessions.values())
        return {name: usage[sid] for name, sid in self.sessions.items()}

    def cpu_seconds(self) -> float:
        return sum(u["cpu_s"] for u in self.sample().values())

    def _run(self) -> None:
        while not self._stop.is_set():
            usage = self.sample()
            values = {name: u["rss_mb"] for name, u in usage.items()}
            values["total"] = sum(values.values())
            with self._lock:
                for key, value in values.items():
                    self._overall[key] = max(self._overall.get(key, 0.0), value)
                    self._window[key] = max(self._window.get(key, 0.0), value)
            self._stop.wait(self.interval)

    def mark(self) -> Dict[str, float]:
        with self._lock:
            window, self._window = self._window, {}
        return {k: round(v, 1) for k, v in window.items()}

    def peak(self) -> Dict[str, float]:
        with self._lock:
            return {k: round(v, 1) for k, v in self._overall.items()}


def load_average() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
