"""The bench's own logic: its Socket.IO framing, how it assigns bot events to messages, its long script."""

from __future__ import annotations

import time

from bench import openloop, scripts


def test_frames_decode_like_the_engineio_v4_socketio_v5_wire_format():
    assert openloop.decode('0{"sid":"abc","pingInterval":25000}') == ("open", {"sid": "abc", "pingInterval": 25000})
    assert openloop.decode("2") == ("ping", "")
    assert openloop.decode('40{"sid":"x"}') == ("connect", {"sid": "x"})
    assert openloop.decode('42["bot_uttered",{"text":"hi"}]') == ("event", ("bot_uttered", {"text": "hi"}))
    assert openloop.decode('42/chat,["session_confirm","web-1"]') == ("event", ("session_confirm", "web-1"))
    assert openloop.decode('4212["x"]') == ("event", ("x", None))  # with an ack id, no data
    assert openloop.decode('44{"message":"nope"}') == ("connect_error", {"message": "nope"})
    assert openloop.decode("41")[0] == "disconnect"
    assert openloop.decode("1")[0] == "close"


def test_events_encode_as_the_widget_sends_them():
    frame = openloop.encode_event("user_uttered", {"message": "no, still failing", "session_id": "web-1"})
    assert frame == '42["user_uttered",{"message":"no, still failing","session_id":"web-1"}]'
    assert openloop.decode(frame) == ("event", ("user_uttered", {"message": "no, still failing", "session_id": "web-1"}))
    assert openloop.ws_url("http://127.0.0.1:5005") == "ws://127.0.0.1:5005/socket.io/?EIO=4&transport=websocket"
    assert openloop.ws_url("https://h.example/") == "wss://h.example/socket.io/?EIO=4&transport=websocket"


class _NoSocket:
    async def send_str(self, _):  # the assignment logic never writes
        raise AssertionError("not used")


def _conversation(counts):
    stats = openloop.Stats()
    conv = openloop.Conversation(_NoSocket(), stats, counts, lost_after=30)
    conv.window = (0.0, float("inf"))
    return conv, stats


def _pending(conv, turn, expected, sent):
    conv.pending.append(openloop._Pending(turn, sent, conv.counts[turn], expected, measured=True))
    conv.stats.sent += 1


def test_overlapping_answers_are_assigned_in_order_by_the_calibrated_counts():
    conv, stats = _conversation([3, 1])
    now = time.monotonic()
    _pending(conv, 0, "site", now - 1.0)
    _pending(conv, 1, "refresh", now - 0.5)  # sent before the first answer was complete
    for text in ("That sounds like Error 102", "I checked the site", "Please check the bank's own site"):
        conv._on_bot({"text": text})
    assert stats.answered == 1 and len(conv.pending) == 1
    conv._on_bot({"text": "Let's refresh the connection"})
    assert stats.answered == 2 and not conv.pending and stats.errors == {}
    assert stats.latencies_ms[1] >= 500  # from its own sending time, not the first message's


def test_an_answer_off_the_script_is_an_error_not_a_latency():
    conv, stats = _conversation([1])
    _pending(conv, 0, "Let's refresh the connection", time.monotonic())
    conv._on_bot({"text": "Sorry, I didn't get that."})
    assert stats.errors == {"wrong_path": 1} and stats.answered == 0 and not stats.latencies_ms


def test_a_message_without_answer_is_lost_once_and_its_late_events_still_consumed():
    conv, stats = _conversation([1, 1])
    now = time.monotonic()
    _pending(conv, 0, "a", now - 40)
    _pending(conv, 1, "b", now - 1)
    conv.expire(now)
    conv.expire(now)
    assert stats.lost == 1
    conv._on_bot({"text": "a"})  # the late answer to the lost message: not a latency, not the next one's
    conv._on_bot({"text": "b"})
    assert stats.answered == 1 and stats.errors == {}


def test_a_refusal_from_the_channel_is_an_error():
    conv, stats = _conversation([1])
    _pending(conv, 0, "x", time.monotonic())
    conv._on_bot({"text": "Sorry, I couldn't read that: ...", "error": True})
    assert sum(stats.errors.values()) == 1 and not conv.pending and stats.answered == 0


def test_the_long_conversation_walks_the_typed_script_then_switches_banks():
    turns = scripts.long_conversation(60)
    assert len(turns) == 60
    assert turns[:10] == scripts.TYPED and turns[10] == scripts.FIXED_IT
    assert turns[11] == (scripts.NEXT_BANKS[0], scripts.SITE_CHECK) and turns[12:21] == scripts.TYPED[1:]
    assert all(expected for _, expected in turns)
    assert scripts.reply_matches([{"text": "Now try a private window (no stored data"}], scripts.PRIVATE_WINDOW)
    assert not scripts.reply_matches([{"image": "x"}, {"text": "Which browser"}], scripts.PRIVATE_WINDOW)
