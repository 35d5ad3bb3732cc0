"""The real python-socketio asyncio client (the versions requirements/constraints.txt holds, on the
aiohttp Rasa pins) against the product's socketio channel, over WebSocket and long-polling: a session
issued, a typed question answered with text and quick replies, and the same session kept when the
client comes back with it."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any, Dict, List

import pytest
import socketio

from tests.servers import ROOT


def _locked(package: str) -> str:
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        name, _, pinned = line.partition("==")
        if name.strip().lower() == package:
            return pinned.strip()
    raise AssertionError(f"{package} is not in the lock")


def test_the_installed_client_is_the_locked_one():
    for package in ("python-socketio", "python-engineio", "aiohttp"):
        assert version(package) == _locked(package), package


async def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.05)


async def _conversation(url: str, transport: str, session_id: str = "") -> Dict[str, Any]:
    client = socketio.AsyncClient(reconnection=False)
    confirmed: List[str] = []
    received: List[Dict[str, Any]] = []
    client.on("session_confirm", lambda sid: confirmed.append(sid))
    client.on("bot_uttered", lambda data: received.append(data))
    await client.connect(url, transports=[transport], wait_timeout=10)
    try:
        assert client.transport() == transport
        await client.emit("session_request", {"session_id": session_id} if session_id else {})
        await _wait_for(lambda: confirmed, 10, "no session_confirm")
        session = confirmed[0]
        await client.emit("user_uttered", {"session_id": session, "message": "got error 102 with chase, what do i do"})
        await _wait_for(lambda: any(r.get("quick_replies") for r in received), 60, f"no answer with buttons: {received}")
        return {"session": session, "received": received}
    finally:
        await client.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_the_real_asyncio_client_talks_to_the_bot_and_keeps_its_session(rasa_stack, transport):
    first = asyncio.run(_conversation(rasa_stack.url, transport))
    assert first["session"].startswith("web-")
    for message in first["received"]:
        assert message.get("text"), message  # every message reads as text alone (Rasa's shape)
        assert set(message) <= {"text", "quick_replies", "metadata", "attachment", "elements", "custom"}, message
    again = asyncio.run(_conversation(rasa_stack.url, transport, session_id=first["session"]))
    assert again["session"] == first["session"]
    assert len(rasa_stack.tracker(first["session"])["events"]) > 0
