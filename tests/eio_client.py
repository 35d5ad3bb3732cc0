"""A small Socket.IO client for tests: Engine.IO v4 (long-polling, then upgrade to websocket) and the
Socket.IO v5 packets of the default namespace, over aiohttp.

Why not python-socketio's ``AsyncClient``: python-engineio 4.13+ opens websockets with
``aiohttp.ClientWSTimeout`` (aiohttp 3.11+), and Rasa 3.6.21 pins aiohttp < 3.10 (issue 17);
python-engineio 4.12.3 / python-socketio 5.16.1 would work as a client but the server would lose the
fixes of the later releases. This client also fails loudly where the library would retry: every
request must succeed the first time (``ProtocolError`` names the step and the answer), which is
what the tests of the worker topology check.

Flow, as the browser's client does it: handshake ``GET ?EIO=4&transport=polling`` (``0{...}``),
``40`` (connect the namespace) by POST, a long-poll loop (answering pings ``2`` with ``3``); then
``upgrade()``: websocket with the same ``sid``, ``2probe`` / ``3probe``, the pending poll is ended (the
server answers it with a noop), ``5``, and from then on everything goes over the websocket.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, List, Optional, Tuple

import aiohttp

SEPARATOR = "\x1e"  # between Engine.IO packets in one polling payload


class ProtocolError(AssertionError):
    """A request that did not get the answer the protocol says (e.g. ``400 Invalid session``)."""


class EngineIOClient:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, path: str = "/socket.io/", headers: Optional[dict] = None):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.path = path
        self.headers = dict(headers or {})
        self.sid = ""  # the Engine.IO session id
        self.socket_sid = ""  # the Socket.IO id of the namespace connection
        self.events: "asyncio.Queue[Tuple[str, Any]]" = asyncio.Queue()
        self.transport = ""
        self.requests: List[Tuple[str, int]] = []  # (what, status) of every HTTP request made
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._poller: Optional[asyncio.Task] = None
        self._ws_reader: Optional[asyncio.Task] = None
        self._pause = asyncio.Event()
        self._paused = asyncio.Event()
        self._closed = False
        self._connected = asyncio.Event()
        self.errors: List[str] = []

    # ------------------------------------------------------------------ HTTP
    def _url(self, transport: str, with_sid: bool = True) -> str:
        q = f"EIO=4&transport={transport}&t={secrets.token_hex(4)}"
        if with_sid and self.sid:
            q += f"&sid={self.sid}"
        return f"{self.base_url}{self.path}?{q}"

    async def _get(self, what: str, with_sid: bool = True, timeout: float = 60.0) -> str:
        async with self.http.get(
            self._url("polling", with_sid), headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as r:
            body = await r.text()
            self.requests.append((what, r.status))
            if r.status != 200:
                raise ProtocolError(f"{what}: HTTP {r.status} {body[:200]!r} (sid {self.sid!r})")
            return body

    async def _post(self, what: str, payload: str) -> None:
        headers = {**self.headers, "Content-Type": "text/plain;charset=UTF-8"}
        async with self.http.post(
            self._url("polling"), data=payload.encode("utf-8"), headers=headers, timeout=aiohttp.ClientTimeout(total=30)
        ) as r:
            body = await r.text()
            self.requests.append((what, r.status))
            if r.status != 200 or body.lower() != "ok":
                raise ProtocolError(f"{what}: HTTP {r.status} {body[:200]!r} (sid {self.sid!r})")

    # ------------------------------------------------------------------ packets
    async def _handle(self, packet: str) -> None:
        if not packet:
            return
        kind, rest = packet[0], packet[1:]
        if kind == "2":  # ping: answer at once
            await self._send_eio("3" + rest)
        elif kind == "4":
            self._handle_socketio(rest)
        elif kind == "1":
            self._closed = True
            self.events.put_nowait(("__closed__", None))
        # "6" (noop), "3" (pong of our probe) need nothing

    def _handle_socketio(self, packet: str) -> None:
        kind, rest = packet[:1], packet[1:]
        if rest.startswith("/"):  # another namespace: not used here
            return
        if kind == "0":
            self.socket_sid = json.loads(rest).get("sid", "") if rest else ""
            self._connected.set()
        elif kind == "2":
            while rest and rest[0].isdigit():  # an ack id
                rest = rest[1:]
            data = json.loads(rest)
            self.events.put_nowait((data[0], data[1] if len(data) > 1 else None))
        elif kind == "4":
            self.errors.append(f"connect error: {rest}")
            self.events.put_nowait(("__connect_error__", rest))
            self._connected.set()
        elif kind == "1":
            self.events.put_nowait(("__disconnect__", None))

    async def _send_eio(self, packet: str) -> None:
        if self._ws is not None and self.transport == "websocket":
            await self._ws.send_str(packet)
        else:
            await self._post(f"POST {packet[:12]!r}", packet)

    # ------------------------------------------------------------------ lifecycle
    async def connect(self, timeout: float = 30.0) -> None:
        """Handshake over long-polling and connect the default namespace."""
        body = await self._get("handshake", with_sid=False, timeout=timeout)
        first = body.split(SEPARATOR)[0]
        if not first.startswith("0"):
            raise ProtocolError(f"handshake: unexpected {body[:200]!r}")
        opened = json.loads(first[1:])
        self.sid = opened["sid"]
        self.upgrades = opened.get("upgrades", [])
        self.transport = "polling"
        await self._post("namespace connect", "40")
        self._poller = asyncio.create_task(self._poll_loop())
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no Socket.IO connect answer within {timeout}s (sid {self.sid})") from None
        if self.errors:
            raise ProtocolError(self.errors[0])

    async def _poll_loop(self) -> None:
        while not self._closed and not self._pause.is_set():
            body = await self._get("poll")
            for packet in body.split(SEPARATOR):
                await self._handle(packet)
        self._paused.set()

    async def upgrade(self, timeout: float = 30.0) -> None:
        """Websocket with the same session, as engine.io-client upgrades."""
        if "websocket" not in self.upgrades:
            raise ProtocolError(f"the server offers no websocket upgrade: {self.upgrades}")
        url = self._url("websocket").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        try:
            ws = await self.http.ws_connect(url, headers=self.headers, timeout=timeout, autoping=False)
        except aiohttp.WSServerHandshakeError as exc:
            self.requests.append(("websocket", exc.status))
            raise ProtocolError(f"websocket upgrade: HTTP {exc.status} {exc.message} (sid {self.sid})") from None
        self.requests.append(("websocket", 101))
        await ws.send_str("2probe")
        answer = await asyncio.wait_for(ws.receive(), timeout)
        if answer.type != aiohttp.WSMsgType.TEXT or answer.data != "3probe":
            raise ProtocolError(f"websocket probe: got {answer.type} {answer.data!r}")
        # pause polling: the server ends the pending poll (noop) once it has seen the probe
        self._pause.set()
        await asyncio.wait_for(self._paused.wait(), timeout)
        self._ws = ws
        await ws.send_str("5")
        self.transport = "websocket"
        self._ws_reader = asyncio.create_task(self._ws_loop())

    async def _ws_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._handle(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        self._closed = True
        self.events.put_nowait(("__closed__", None))

    async def emit(self, event: str, data: Any = None) -> None:
        await self._send_eio("42" + json.dumps([event] if data is None else [event, data]))

    async def next_event(self, name: str, timeout: float = 30.0, containing: Optional[str] = None) -> Any:
        """The data of the next ``name`` event (whose JSON contains ``containing``, if given); other
        events are skipped. ProtocolError on a timeout or a closed connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise ProtocolError(f"no {name!r} event{f' with {containing!r}' if containing else ''} within {timeout}s")
            try:
                event, data = await asyncio.wait_for(self.events.get(), left)
            except asyncio.TimeoutError:
                continue
            if event == "__closed__":
                raise ProtocolError(f"connection closed while waiting for {name!r}")
            if event == name and (containing is None or containing in json.dumps(data)):
                return data

    def check_poller(self) -> None:
        """Raises what went wrong in the background polling, if anything did."""
        if self._poller is not None and self._poller.done() and not self._poller.cancelled():
            exc = self._poller.exception()
            if exc is not None:
                raise exc

    async def close(self) -> None:
        self._closed = True
        try:
            if self._ws is not None and not self._ws.closed:
                await self._ws.send_str("1")
                await self._ws.close()
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            pass
        for task in (self._poller, self._ws_reader):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._poller, self._ws_reader):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
