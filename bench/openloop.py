"""Open-loop load over the chat widget's socket (Socket.IO), as many browsers would make it.

``run_open_loop(url, script, conversations=1000, mean_interval=10, duration=60)``: ``conversations``
widget connections, opened gradually (``ramp_per_s``), each one a customer who sends the script's
next message after a random pause (exponential, mean ``mean_interval`` s: Poisson arrivals per
conversation), whether or not the previous answer has come: the offered rate is
``conversations / mean_interval`` messages per second, whatever the server does. A conversation that
reaches the end of the script starts a new one on the same socket (``session_request`` without an
id). Measured over ``duration`` seconds once every connection is open: messages sent, latency from
sending a message to the first ``bot_uttered`` event for it, errors, messages lost (no reply within
``lost_after`` s), and a reply that is not the scripted step's (``wrong_path``).

The client is a small Engine.IO v4 / Socket.IO v5 client over aiohttp websockets (one
``ClientSession``, one websocket per conversation), speaking to the server as the widget does
(``bot/server/widget/static/widget.js``, ``bot/server/channels/socketio.py``): connect to the default
namespace, ``session_request`` -> ``session_confirm`` (the server-issued id), then
``user_uttered {message, session_id}``; the server's pings are answered. A full client
(python-socketio) costs several times the CPU per connection, and this one runs on the same 2 cores.

Which ``bot_uttered`` events answer which message: a conversation's messages are handled one after
the other (Rasa's lock store), and the socket channel sends each answer as a fixed number of events
(texts are split on blank lines). ``calibrate()`` plays the script once, one message at a time, and
counts them; under load, events are assigned in order by those counts, and the expected text is
checked in each message's events.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

import aiohttp

from bench import load

Turn = Tuple[str, Optional[str]]


# --------------------------------------------------------------------------- protocol


def ws_url(base_url: str, path: str = "/socket.io") -> str:
    """``http://h:p`` -> ``ws://h:p/socket.io/?EIO=4&transport=websocket``."""
    scheme, rest = base_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}{path}/?EIO=4&transport=websocket"


def encode_event(event: str, data: Any) -> str:
    """A Socket.IO EVENT packet on the default namespace inside an Engine.IO MESSAGE packet."""
    return "42" + json.dumps([event, data], separators=(",", ":"))


def decode(frame: str) -> Tuple[str, Any]:
    """One Engine.IO text frame -> (kind, payload). Kinds: ``open`` (handshake dict), ``ping``,
    ``pong``, ``close``, ``connect`` (namespace connected), ``disconnect``, ``event`` ((name, data)),
    ``connect_error``, ``other``."""
    if not frame:
        return "other", frame
    eio, body = frame[0], frame[1:]
    if eio == "0":
        return "open", json.loads(body)
    if eio == "2":
        return "ping", body
    if eio == "3":
        return "pong", body
    if eio == "1":
        return "close", body
    if eio != "4" or not body:
        return "other", frame
    sio, rest = body[0], body[1:]
    if rest.startswith("/"):  # a namespace other than "/": "/name,<payload>"
        _, _, rest = rest.partition(",")
    while rest[:1].isdigit():  # an ack id
        rest = rest[1:]
    if sio == "0":
        return "connect", json.loads(rest) if rest else {}
    if sio == "1":
        return "disconnect", rest
    if sio == "2":
        name, *args = json.loads(rest)
        return "event", (name, args[0] if args else None)
    if sio == "4":
        return "connect_error", json.loads(rest) if rest else None
    return "other", frame


# --------------------------------------------------------------------------- one conversation


@dataclass
class _Pending:
    turn: int
    sent: float  # time.monotonic()
    needed: int
    expected: Optional[str]
    measured: bool  # sent inside the measurement window
    got: List[str] = field(default_factory=list)
    first: Optional[float] = None


@dataclass
class Stats:
    sent: int = 0  # messages sent inside the window
    answered: int = 0  # ... whose first reply came within lost_after
    latencies_ms: List[float] = field(default_factory=list)
    errors: Dict[str, int] = field(default_factory=dict)
    lost: int = 0
    late: int = 0  # answered, but after lost_after (counted as lost too)
    conversations_started: int = 0
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    unexpected_events: int = 0
    late_after_lost_ms: List[float] = field(default_factory=list)  # first replies to messages already lost

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Conversation:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, stats: Stats, counts: Sequence[int], lost_after: float):
        self.ws, self.stats, self.counts, self.lost_after = ws, stats, counts, lost_after
        self.pending: Deque[_Pending] = collections.deque()
        self.session_id: Optional[str] = None
        self._confirmed = asyncio.Event()
        self.window = (float("inf"), float("inf"))  # set when the measurement window starts
        self.closed = False
        self.reader_task: Optional[asyncio.Task] = None

    def measuring(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    async def handshake(self, timeout: float) -> None:
        async def run() -> None:
            kind, _ = decode((await self.ws.receive_str()))
            if kind != "open":
                raise ConnectionError(f"expected the Engine.IO open packet, got {kind}")
            await self.ws.send_str("40")
            while True:
                kind, payload = decode(await self.ws.receive_str())
                if kind == "connect":
                    return
                if kind == "ping":
                    await self.ws.send_str("3")
                elif kind in ("connect_error", "close", "disconnect"):
                    raise ConnectionError(f"namespace connect refused: {payload}")

        await asyncio.wait_for(run(), timeout)

    async def new_session(self, timeout: float = 30.0) -> bool:
        self._confirmed.clear()
        self.session_id = None
        await self.ws.send_str(encode_event("session_request", {"session_id": None}))
        try:
            await asyncio.wait_for(self._confirmed.wait(), timeout)
        except asyncio.TimeoutError:
            self.stats.error("no_session_confirm")
            return False
        self.stats.conversations_started += 1
        return True

    async def send(self, turn: int, text: str, expected: Optional[str]) -> None:
        now = time.monotonic()
        p = _Pending(turn, now, self.counts[turn], expected, self.measuring(now))
        self.pending.append(p)
        if p.measured:
            self.stats.sent += 1
        await self.ws.send_str(encode_event("user_uttered", {"message": text, "session_id": self.session_id}))

    def _on_bot(self, data: Any) -> None:
        now = time.monotonic()
        if isinstance(data, dict) and data.get("error"):  # the channel refused the message
            self.stats.error("refused: " + str(data.get("text", ""))[:60])
            if self.pending:
                self._finish(self.pending.popleft(), ok=False)
            return
        if not self.pending:
            self.stats.unexpected_events += 1
            return
        p = self.pending[0]
        if p.first is None:
            p.first = now
            if getattr(p, "_lost", False):  # counted as lost; how late its answer came is still worth knowing
                self.stats.late_after_lost_ms.append((now - p.sent) * 1000.0)
        p.got.append((data or {}).get("text") or "" if isinstance(data, dict) else "")
        if len(p.got) >= p.needed:
            self.pending.popleft()
            on_path = p.expected is None or any(p.expected in t for t in p.got)
            if not on_path and p.measured:
                self.stats.error("wrong_path")
            self._finish(p, ok=on_path)

    def _finish(self, p: _Pending, ok: bool) -> None:
        if not p.measured:
            return
        if p.first is None or not ok:
            return
        latency = p.first - p.sent
        if latency > self.lost_after:
            self.stats.late += 1
            return
        self.stats.answered += 1
        self.stats.latencies_ms.append(latency * 1000.0)

    def expire(self, now: float) -> None:
        """Messages without a first reply for ``lost_after`` s are lost (and their late events are
        still assigned to them, so the ones after stay matched)."""
        for p in self.pending:
            if p.first is None and p.measured and now - p.sent > self.lost_after and not getattr(p, "_lost", False):
                p._lost = True  # type: ignore[attr-defined]
                p.measured = False
                self.stats.lost += 1

    async def reader(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue
                kind, payload = decode(msg.data)
                if kind == "ping":
                    await self.ws.send_str("3")
                elif kind == "event":
                    name, data = payload
                    if name == "session_confirm":
                        self.session_id = data
                        self._confirmed.set()
                    elif name == "bot_uttered":
                        self._on_bot(data)
                elif kind in ("close", "disconnect"):
                    break
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            if not self.closed:
                self.stats.disconnects += 1
            self.closed = True


# --------------------------------------------------------------------------- calibration


async def _calibrate(base_url: str, script: Sequence[Turn], origin: str, quiet: float) -> List[int]:
    stats = Stats()
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.ws_connect(ws_url(base_url), headers={"Origin": origin}) as ws:
            conv = Conversation(ws, stats, [10**6] * len(script), lost_after=60)
            await conv.handshake(30)
            reader = asyncio.create_task(conv.reader())
            if not await conv.new_session():
                raise RuntimeError("calibration: no session_confirm from the widget socket")
            counts = []
            for i, (text, expected) in enumerate(script):
                await conv.send(i, text, expected)
                p = conv.pending[-1]
                deadline = time.monotonic() + 60
                while not p.got and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                last = len(p.got)
                while True:  # the answer is complete when no event came for `quiet` s
                    await asyncio.sleep(quiet)
                    if len(p.got) == last:
                        break
                    last = len(p.got)
                if not p.got or (expected is not None and not any(expected in t for t in p.got)):
                    raise RuntimeError(f"calibration: {text!r} was answered {p.got!r}, expected {expected!r}")
                counts.append(len(p.got))
                conv.pending.clear()
            conv.closed = True
            reader.cancel()
            return counts


def calibrate(base_url: str, script: Sequence[Turn], origin: str, quiet: float = 1.5) -> List[int]:
    """The number of ``bot_uttered`` events that answer each message of ``script`` (played once,
    one message at a time, over the widget socket); raises if an answer is not the scripted step."""
    return asyncio.run(_calibrate(base_url, script, origin, quiet))


# --------------------------------------------------------------------------- the level


async def _customer(
    session: aiohttp.ClientSession,
    base_url: str,
    origin: str,
    script: Sequence[Turn],
    counts: Sequence[int],
    mean_interval: float,
    rng: random.Random,
    stats: Stats,
    lost_after: float,
    stop_sending: asyncio.Event,
    conversations: List[Conversation],
) -> None:
    try:
        ws = await session.ws_connect(ws_url(base_url), headers={"Origin": origin}, autoping=True, timeout=30)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.connect_failures += 1
        stats.error(f"connect: {type(exc).__name__}")
        return
    conv = Conversation(ws, stats, counts, lost_after)
    try:
        await conv.handshake(30)
    except (ConnectionError, asyncio.TimeoutError, aiohttp.ClientError, TypeError, ValueError) as exc:
        stats.connect_failures += 1
        stats.error(f"handshake: {type(exc).__name__}")
        await ws.close()
        return
    stats.connected += 1
    conversations.append(conv)
    # the reader runs until the level closes the sockets (answers after the last message still arrive)
    conv.reader_task = asyncio.create_task(conv.reader())
    while not stop_sending.is_set() and not conv.closed:
        if not await conv.new_session():
            break
        for i, (text, expected) in enumerate(script):
            try:
                await asyncio.wait_for(stop_sending.wait(), rng.expovariate(1.0 / mean_interval))
                return
            except asyncio.TimeoutError:
                pass
            if conv.closed:
                return
            await conv.send(i, text, expected)
        # the script is over: wait for its last answers before the next conversation's session_request
        while conv.pending and not conv.closed and not stop_sending.is_set():
            await asyncio.sleep(0.2)


async def _open_loop(
    base_url: str,
    script: Sequence[Turn],
    counts: Sequence[int],
    conversations: int,
    mean_interval: float,
    duration: float,
    ramp_per_s: float,
    lost_after: float,
    origin: str,
    seed: int,
    on_window=None,
) -> Dict[str, Any]:
    stats = Stats()
    rng = random.Random(seed)
    stop_sending = asyncio.Event()
    convs: List[Conversation] = []
    cpu_before = load._own_cpu_seconds()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        tasks = []
        ramp_started = time.monotonic()
        for n in range(conversations):
            target = ramp_started + n / ramp_per_s
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(
                    _customer(
                        session,
                        base_url,
                        origin,
                        script,
                        counts,
                        mean_interval,
                        random.Random(rng.random()),
                        stats,
                        lost_after,
                        stop_sending,
                        convs,
                    )
                )
            )
        # every connection open (or failed) before the window starts
        deadline = time.monotonic() + 60
        while stats.connected + stats.connect_failures < conversations and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        ramp_s = time.monotonic() - ramp_started
        window_start = time.monotonic()
        window_end = window_start + duration
        for c in convs:
            c.window = (window_start, window_end)
        if on_window:
            on_window("start")
        while time.monotonic() < window_end:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for c in convs:
                c.expire(now)
        if on_window:
            on_window("end")
        stop_sending.set()
        # the window's messages get lost_after seconds to be answered
        drain_deadline = window_end + lost_after + 1
        while time.monotonic() < drain_deadline and any(p.measured and p.first is None for c in convs for p in c.pending):
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for c in convs:
                c.expire(now)
        for c in convs:
            c.expire(time.monotonic() + lost_after + 1)  # anything still unanswered now is lost
            c.closed = True
        for c in convs:
            await c.ws.close()
        readers = [c.reader_task for c in convs if c.reader_task is not None]
        for t in tasks + readers:
            t.cancel()
        await asyncio.gather(*tasks, *readers, return_exceptions=True)
    loadgen_cpu = load._own_cpu_seconds() - cpu_before
    errors = sum(stats.errors.values())
    return {
        "conversations": conversations,
        "connected": stats.connected,
        "connect_failures": stats.connect_failures,
        "ramp_s": round(ramp_s, 1),
        "mean_interval_s": mean_interval,
        "offered_msgs_per_s": round(conversations / mean_interval, 1),
        "duration_s": duration,
        "sent": stats.sent,
        "sent_per_s": round(stats.sent / duration, 2),
        "answered": stats.answered,
        "msgs_per_s": round(stats.answered / duration, 2),
        "ok": stats.answered,
        "errors": errors,
        "error_kinds": dict(stats.errors),
        "lost": stats.lost,
        "late": stats.late,
        "lost_after_s": lost_after,
        "disconnects_during_run": stats.disconnects,
        "unexpected_events": stats.unexpected_events,
        # answers that came after the message was counted as lost (before the sockets were closed)
        "lost_answered_later": len(stats.late_after_lost_ms),
        "lost_answered_later_p50_ms": load.summarize_latencies(stats.late_after_lost_ms)["p50_ms"],
        "conversations_started": stats.conversations_started,
        "loadgen_cpu_s": round(loadgen_cpu, 2),
        **load.summarize_latencies(stats.latencies_ms),
    }


def run_open_loop(
    base_url: str,
    script: Sequence[Turn],
    counts: Sequence[int],
    conversations: int = 1000,
    mean_interval: float = 10.0,
    duration: float = 60.0,
    ramp_per_s: float = 50.0,
    lost_after: float = 30.0,
    origin: Optional[str] = None,
    seed: int = 0,
    on_window=None,
) -> Dict[str, Any]:
    """One open-loop level (see the module docstring); ``on_window("start"/"end")`` marks the window."""
    return asyncio.run(
        _open_loop(
            base_url,
            script,
            counts,
            conversations,
            mean_interval,
            duration,
            ramp_per_s,
            lost_after,
            origin or base_url.replace("127.0.0.1", "localhost"),
            seed,
            on_window,
        )
    )
