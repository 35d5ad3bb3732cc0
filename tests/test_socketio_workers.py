"""The pieces of Socket.IO across run.sh's processes, on their own (bot/server/channels/socketio_workers.py):
the worker topology from the environment, session ids that start with the process index, and the
client manager that shares emits over unix datagram sockets: two real Socket.IO servers (aiohttp,
each with its own manager) and a real client (tests/eio_client.py) connected to one of them."""

from __future__ import annotations

import asyncio
import os
import socket
import stat

import aiohttp
import engineio
import pytest
import socketio
from aiohttp import web

from bot.server.channels import socketio_workers
from bot.server.channels.socketio_workers import LocalPubSubManager, Topology, install_sid_prefix, topology
from tests import servers
from tests.eio_client import EngineIOClient


def test_topology_comes_from_worker_index_and_count():
    assert topology({}) is None
    assert topology({"WORKER_INDEX": "1", "WORKER_COUNT": "2"}) == Topology(1, 2)
    assert topology({"WORKER_INDEX": " 0 ", "WORKER_COUNT": "4"}) == Topology(0, 4)
    for bad in ({"WORKER_INDEX": "2", "WORKER_COUNT": "2"}, {"WORKER_INDEX": "-1", "WORKER_COUNT": "2"},
                {"WORKER_INDEX": "x", "WORKER_COUNT": "2"}, {"WORKER_INDEX": "0"}, {"WORKER_COUNT": "2"},
                {"WORKER_INDEX": "0", "WORKER_COUNT": "0"}):  # fmt: skip
        with pytest.raises(ValueError):
            topology(bad)
    # one process of one: no manager; several: the local one, in SOCKETIO_PEERS_DIR
    assert socketio_workers.local_client_manager({"WORKER_INDEX": "0", "WORKER_COUNT": "1"}) is None
    manager = socketio_workers.local_client_manager({"WORKER_INDEX": "1", "WORKER_COUNT": "3", "SOCKETIO_PEERS_DIR": "/x/run"})
    assert (manager.index, manager.count, str(manager.path)) == (1, 3, "/x/run/socketio-1.sock")
    assert [str(p) for p in manager.peers] == ["/x/run/socketio-0.sock", "/x/run/socketio-2.sock"]
    with pytest.raises(ValueError, match="too long"):
        LocalPubSubManager("/" + "d" * 120, 0, 2)


def test_session_ids_start_with_the_process_index():
    eio = engineio.AsyncServer(async_mode="aiohttp")
    install_sid_prefix(eio, 3)
    install_sid_prefix(eio, 3)  # installing again changes nothing
    ids = {eio.generate_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(i.startswith("3.") and "." not in i[2:] and len(i) > 12 for i in ids), sorted(ids)[:3]
    # (the Socket.IO server's own ids come from the same generator: see the next test's socket_sid)


class _Stack:
    """Socket.IO servers 0..n-1 on free ports, each with a LocalPubSubManager in one directory; a
    ``join`` event puts the client's socket in the room it names (as session_request does)."""

    def __init__(self, directory, count: int):
        self.directory, self.count = directory, count
        self.servers, self.managers, self.runners, self.urls = [], [], [], []

    async def start(self, indexes=None) -> None:
        for i in indexes if indexes is not None else range(self.count):
            manager = LocalPubSubManager(self.directory, i, self.count)
            sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, cors_allowed_origins=[])
            install_sid_prefix(sio.eio, i)

            async def join(sid, room, sio=sio):
                await sio.enter_room(sid, room)
                await sio.emit("joined", room, to=sid)

            sio.on("join", join)
            app = web.Application()
            sio.attach(app)
            runner = web.AppRunner(app)
            await runner.setup()
            port = servers.free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            sio.manager_initialized = True
            manager.initialize()
            self.servers.append(sio)
            self.managers.append(manager)
            self.runners.append(runner)
            self.urls.append(f"http://127.0.0.1:{port}")

    async def stop(self) -> None:
        for manager in self.managers:
            manager.close()
        for runner in self.runners:
            await runner.cleanup()


async def _client(http, url, room):
    client = EngineIOClient(http, url)
    await client.connect()
    await client.emit("join", room)
    assert await client.next_event("joined", 10) == room
    return client


async def test_an_emit_reaches_a_client_held_by_the_other_process(tmp_path):
    stack = _Stack(tmp_path / "run", 2)
    await stack.start()
    try:
        assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
        for i in range(2):
            path = tmp_path / "run" / f"socketio-{i}.sock"
            assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
        async with aiohttp.ClientSession() as http:
            on_1 = await _client(http, stack.urls[1], "web-room-a")
            assert on_1.sid.startswith("1.") and on_1.socket_sid.startswith("1.")
            await on_1.upgrade()
            on_0 = await _client(http, stack.urls[0], "web-room-b")
            try:
                # from the process that does not hold the socket, and from the one that does
                await stack.servers[0].emit("bot_uttered", {"text": "from process 0"}, room="web-room-a")
                assert (await on_1.next_event("bot_uttered", 10)) == {"text": "from process 0"}
                await stack.servers[1].emit("bot_uttered", {"text": "from process 1"}, room="web-room-a")
                assert (await on_1.next_event("bot_uttered", 10)) == {"text": "from process 1"}
                # ordered, each once, and only to the room's member
                for n in range(50):
                    await stack.servers[n % 2].emit("bot_uttered", {"n": n}, room="web-room-a")
                got = [(await on_1.next_event("bot_uttered", 10))["n"] for _ in range(50)]
                assert sorted(got) == list(range(50))
                assert [n for n in got if n % 2 == 0] == list(range(0, 50, 2))  # one sender's are in order
                await stack.servers[0].emit("bot_uttered", {"text": "for b"}, room="web-room-b")
                assert (await on_0.next_event("bot_uttered", 10)) == {"text": "for b"}
                await asyncio.sleep(0.3)
                assert on_1.events.empty() and on_0.events.empty(), "a message arrived twice or at the wrong client"
                on_1.check_poller()
                on_0.check_poller()
            finally:
                await on_1.close()
                await on_0.close()
    finally:
        await stack.stop()
    assert not any((tmp_path / "run").glob("*.sock")), "close() leaves no socket behind"


async def test_a_missing_peer_is_skipped_and_foreign_or_oversized_messages_are_dropped(tmp_path):
    stack = _Stack(tmp_path / "run", 3)
    await stack.start(indexes=[0, 1])  # process 2 never started
    try:
        async with aiohttp.ClientSession() as http:
            client = await _client(http, stack.urls[1], "web-room")
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await stack.servers[0].emit("bot_uttered", {"text": "hello"}, room="web-room")
                assert loop.time() - started < 1.0
                assert (await client.next_event("bot_uttered", 10)) == {"text": "hello"}

                # a datagram from a socket that is not one of the processes' is not believed
                intruder_path = tmp_path / "intruder.sock"
                intruder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                intruder.bind(str(intruder_path))
                message = {"method": "emit", "event": "bot_uttered", "data": [{"text": "forged"}]}
                message.update(namespace="/", room="web-room", host_id="someone")
                forged = stack.managers[0].json.dumps(message).encode()
                intruder.sendto(forged, str(stack.managers[1].path))
                intruder.sendto(b"not json at all", str(stack.managers[1].path))
                intruder.close()
                os.unlink(intruder_path)

                # too large to share: dropped (and counted), the local members still get it
                big = {"text": "x" * (socketio_workers.MAX_DATAGRAM + 10)}
                await stack.servers[0].emit("bot_uttered", big, room="web-room")
                assert stack.managers[0].dropped == 1

                await stack.servers[0].emit("bot_uttered", {"text": "after"}, room="web-room")
                assert (await client.next_event("bot_uttered", 10)) == {"text": "after"}, "the forged or big one arrived"
            finally:
                await client.close()
    finally:
        await stack.stop()
