"""Socket.IO over several Rasa processes on one machine (``make run`` with WORKERS > 1).

scripts/run.sh starts WORKER_COUNT processes (``WORKER_INDEX`` 0 .. WORKER_COUNT-1), each on its own
127.0.0.1 port, behind nginx. Two things make the widget's Socket.IO work across them:

* **Stickiness by session id.** Every Engine.IO session id a process issues starts with its index and
  a dot (``"1.Qx3..."``, ``sid_prefix``); nginx sends each ``/socket.io/`` request that carries
  ``sid=`` to the process its prefix names, and a handshake (no ``sid``) to any process. A session's
  long-polling requests and its websocket upgrade so reach the one process that holds it. The prefix
  is routing information only: a made-up prefix reaches a process that does not know the session,
  which answers ``400`` as for any unknown id.
* **Emits reach every process** (``LocalPubSubManager``): a message emitted by one process to a room
  whose socket is held by another (a specialist's reply sent from the console, a hand-off notice, a
  back-online notice of a background task, a reply to a tab open on another process) is published to
  the other processes over unix datagram sockets, one per process, ``<dir>/socketio-<index>.sock``
  (``dir``: ``SOCKETIO_PEERS_DIR``, default ``var/run``, created mode 0700 so only this user can
  write to it; messages from any other address are dropped). python-socketio's pub/sub protocol
  (``AsyncPubSubManager``, JSON) does the rest: each process emits to its own members of the room.
  A peer that is not listening (still loading, stopped) is skipped. Unix datagrams are reliable and
  ordered on one machine; a message larger than ``MAX_DATAGRAM`` is not published (logged).

Replicas on several machines use Redis instead (``SOCKETIO_REDIS_URL``, see
``bot.server.channels.socketio``); the session-id prefix still applies when WORKER_INDEX is set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, Mapping, Optional

from socketio.async_pubsub_manager import AsyncPubSubManager

from bot.paths import var_dir

logger = logging.getLogger(__name__)

#: the largest message published to the other processes (bot messages are a few KB)
MAX_DATAGRAM = 192 * 1024
#: how long a publish waits for a peer whose receive queue is full before dropping the message
SEND_WAIT_SECONDS = 2.0
#: sockets are named by path; Linux allows 107 bytes
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Topology:
    index: int
    count: int


def topology(env: Optional[Mapping[str, str]] = None) -> Optional[Topology]:
    """This process's place among run.sh's processes (``WORKER_INDEX``/``WORKER_COUNT``), or None when
    it runs alone. ValueError for values that make no sense (the server then refuses to start)."""
    env = os.environ if env is None else env
    raw_index, raw_count = (env.get("WORKER_INDEX") or "").strip(), (env.get("WORKER_COUNT") or "").strip()
    if not raw_index and not raw_count:
        return None
    try:
        index, count = int(raw_index), int(raw_count)
    except ValueError:
        raise ValueError(f"WORKER_INDEX ({raw_index!r}) and WORKER_COUNT ({raw_count!r}) must both be whole numbers")
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"WORKER_INDEX must be in 0..WORKER_COUNT-1 (got {index} of {count})")
    return Topology(index, count)


def sid_prefix(index: int) -> str:
    """What every session id of process ``index`` starts with (nginx routes on it)."""
    return f"{index}."


def install_sid_prefix(eio_server: Any, index: int) -> None:
    """Makes the Engine.IO server (and so the Socket.IO server, which asks it for ids) issue ids that
    start with ``sid_prefix(index)``; ``.`` is not in Engine.IO's id alphabet (base64url)."""
    prefix = sid_prefix(index)
    original: Callable[[], str] = eio_server.generate_id
    if getattr(original, "bankfeed_prefix", None) == prefix:
        return

    def generate_id() -> str:
        return prefix + original()

    generate_id.bankfeed_prefix = prefix  # type: ignore[attr-defined]
    eio_server.generate_id = generate_id


def peers_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if env is None else env
    configured = (env.get("SOCKETIO_PEERS_DIR") or "").strip()
    return Path(configured) if configured else var_dir() / "run"


class LocalPubSubManager(AsyncPubSubManager):
    """python-socketio's pub/sub client manager over unix datagram sockets between the processes of
    one machine (see the module docstring). ``open()`` binds this process's socket and starts the
    listener (the channel does it when the server starts); ``close()`` removes it."""

    name = "bankfeed-local"

    def __init__(self, directory: Path, index: int, count: int, logger: Any = None):
        super().__init__(channel="socketio", logger=logger)
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"index {index} is not one of {count} processes")
        self.directory = Path(directory).absolute()
        self.index, self.count = index, count
        self.path = self.socket_path(index)
        self.peers = [self.socket_path(i) for i in range(count) if i != index]
        self._peer_names = {str(p) for p in self.peers}
        self._sock: Optional[socket.socket] = None
        self._queue: "asyncio.Queue[bytes]" = asyncio.Queue()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.dropped = 0  # messages not delivered to a peer that was listening (full, too large)

    def socket_path(self, i: int) -> Path:
        path = self.directory / f"socketio-{i}.sock"
        if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
            raise ValueError(f"socket path too long for a unix socket ({len(str(path))} > {MAX_SOCKET_PATH}): {path}")
        return path

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Binds ``socketio-<index>.sock`` (replacing a stale one) and reads it on the running loop."""
        if self._sock is not None:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(self.directory.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.directory, 0o700)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 4 * 1024 * 1024)  # capped by the kernel's max
                except OSError:
                    pass
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self._get_logger().info("Socket.IO emits shared with %d other process(es) through %s", len(self.peers), self.directory)

    def initialize(self) -> None:
        """Called by the Socket.IO server (first connection) or by ``open()``'s caller: binds the
        socket and starts python-socketio's listener task once."""
        self.open()
        if getattr(self, "thread", None) is None:
            super().initialize()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None:
            try:
                self._loop.remove_reader(sock.fileno())
            except (ValueError, RuntimeError):  # loop already closed
                pass
        sock.close()
        try:
            if self.path.exists() and stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()
        except OSError:
            pass

    # ------------------------------------------------------------------ the transport
    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._get_logger().warning("Socket.IO peers socket: %s", exc)
                return
            if sender not in self._peer_names:  # not one of the other processes' sockets
                self._get_logger().warning("Socket.IO peers socket: dropped a message from %r", sender or "an unnamed socket")
                continue
            self._queue.put_nowait(data)

    async def _listen(self) -> AsyncIterator[bytes]:
        while True:
            yield await self._queue.get()

    async def _publish(self, data: Dict[str, Any]) -> None:
        if self._sock is None:
            self.open()
        sock = self._sock
        payload = self.json.dumps(data).encode("utf-8")
        if len(payload) > MAX_DATAGRAM:
            self.dropped += 1
            self._get_logger().error(
                "Socket.IO message of %d bytes not shared with the other processes (limit %d)", len(payload), MAX_DATAGRAM
            )
            return
        for peer in self.peers:
            await self._send(sock, payload, peer)

    async def _send(self, sock: socket.socket, payload: bytes, peer: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_WAIT_SECONDS
        while True:
            try:
                sock.sendto(payload, str(peer))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                return  # that process is not listening (still loading, or stopped): it holds no sockets
            except (BlockingIOError, InterruptedError):
                if loop.time() >= deadline:
                    self.dropped += 1
                    self._get_logger().error("Socket.IO message not delivered to %s: its queue stayed full", peer.name)
                    return
                await asyncio.sleep(0.005)
            except OSError as exc:
                self.dropped += 1
                self._get_logger().error("Socket.IO message not delivered to %s: %s", peer.name, exc)
                return


def local_client_manager(env: Optional[Mapping[str, str]] = None) -> Optional[LocalPubSubManager]:
    """A ``LocalPubSubManager`` for this process when run.sh started several (``topology``), else None."""
    place = topology(env)
    if place is None or place.count < 2:
        return None
    return LocalPubSubManager(peers_dir(env), place.index, place.count)
