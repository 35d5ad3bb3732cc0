"""Server-issued conversation ids (bot/sessions.py), client metadata allow-listing and the server-side
conversation references (bot/handoff/conversation_refs.py): plain Python, no Rasa."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from bot import sessions
from bot.server.channels import inbound
from bot.sessions import SecretError, SessionIds, channel_of, load_secret

SECRET = b"k" * 32


def test_issued_ids_verify_only_for_their_channel_and_secret():
    ids = SessionIds(SECRET)
    rest, web = ids.issue(sessions.REST), ids.issue(sessions.WEB)
    assert rest.startswith("rest-") and web.startswith("web-")
    assert ids.verify(rest, sessions.REST) and ids.verify(web, sessions.WEB)
    assert not ids.verify(rest, sessions.WEB) and not ids.verify(web, sessions.REST)
    # the same shape with the other prefix: the tag covers the prefix
    assert not ids.verify("web-" + rest[len("rest-") :], sessions.WEB)
    assert not SessionIds(b"o" * 32).verify(rest, sessions.REST)  # another deployment's secret
    assert len({ids.issue(sessions.REST) for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "forged",
    [
        None,
        5,
        "",
        "rest-",
        "rest-abc",
        "U123_D456",
        "slack-U1_D1",
        "teams-29:abc",
        "rest-" + "A" * 22 + "." + "A" * 22,  # right shape, made-up tag
        "rest-" + "A" * 22 + "." + "A" * 22 + "\n",
        " rest-" + "A" * 22 + "." + "A" * 22,
    ],
)
def test_made_up_ids_are_refused(forged):
    assert not SessionIds(SECRET).verify(forged, sessions.REST)


def test_a_changed_character_of_the_random_part_or_tag_is_refused():
    ids = SessionIds(SECRET)
    good = ids.issue(sessions.REST)
    for i in range(len("rest-"), len(good)):
        if good[i] == ".":
            continue
        flipped = good[:i] + ("B" if good[i] != "B" else "C") + good[i + 1 :]
        assert not ids.verify(flipped, sessions.REST), i


def test_short_secrets_are_refused():
    with pytest.raises(SecretError):
        SessionIds(b"short")
    with pytest.raises(SecretError):
        load_secret({sessions.SECRET_ENV: "too-short"})


def test_secret_from_the_environment_wins(tmp_path):
    value = "e" * 40
    assert load_secret({sessions.SECRET_ENV: value}, tmp_path) == value.encode()
    assert not (tmp_path / sessions.SECRET_FILE).exists()


def test_secret_file_is_generated_once_with_mode_0600(tmp_path):
    directory = tmp_path / "var"
    results = []
    threads = [threading.Thread(target=lambda: results.append(load_secret({}, directory))) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(results)) == 1 and len(results[0]) >= sessions.MIN_SECRET_CHARS
    path = directory / sessions.SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret({}, directory) == results[0]  # a restart keeps the ids valid
    path.write_text("x\n")
    with pytest.raises(SecretError):
        load_secret({}, directory)


def test_channel_of_reads_the_prefix():
    ids = SessionIds(SECRET)
    assert channel_of(ids.issue(sessions.REST)) == "rest"
    assert channel_of(ids.issue(sessions.WEB)) == "socketio"
    assert channel_of("slack-U1_D1") == "slack"
    assert channel_of("teams-29:abc") == "botframework"
    for other in ("U1_D1", "29:abc", "slack-", "", None, "REST-x"):
        assert channel_of(other) is None


def test_client_metadata_keeps_only_allow_listed_short_strings():
    forged = {
        "language": "en-GB",
        "page_url": "https://example.com/help",
        "user_agent": "Firefox\x00",
        "botframework": {"serviceUrl": "http://attacker.example/?x="},
        "out_channel": "C123",
        "thread_id": "1.2",
        "input_channel": "slack",
        "client_message_id": 7,
        "page_url_extra": "x",
        "timezone": "America/Chicago",
        "hour_cycle": "h23-and-more",
    }
    assert inbound.client_metadata(forged) == {
        "language": "en-GB",
        "page_url": "https://example.com/help",
        "user_agent": "Firefox",
        "timezone": "America/Chicago",
    }
    assert inbound.client_metadata({"language": "x" * 36}) == {}
    assert inbound.client_metadata(None) == {}


def test_rest_payload_drops_the_channel_and_foreign_metadata():
    body = (
        b'{"sender": "rest-a", "message": "hi", "input_channel": "botframework", "extra": 1,'
        b' "metadata": {"botframework": {"serviceUrl": "http://x"}, "language": "fr"}}'
    )
    assert inbound.rest_payload(body, "application/json") == {"sender": "rest-a", "message": "hi", "metadata": {"language": "fr"}}
    _, _, metadata = inbound.socket_payload(
        {"session_id": "web-a", "message": "hi", "metadata": {"out_channel": "C1", "user_agent": "UA"}}, True
    )
    assert metadata == {"user_agent": "UA"}


# ---------------------------------------------------------------------------- conversation references
@pytest.fixture
def refs(tmp_path):
    from bot.db.engine import Database
    from bot.handoff.conversation_refs import ConversationRefs

    db = Database(f"sqlite:///{tmp_path / 'refs.db'}")
    db.migrate()
    yield ConversationRefs(db)
    db.dispose()


def test_references_are_stored_replaced_and_read_back(refs):
    assert refs.get("slack-U1_D1") is None
    refs.remember("slack-U1_D1", "slack", {"out_channel": "D1", "thread_id": None})
    ref = refs.get("slack-U1_D1")
    assert ref.channel == "slack" and ref.reference == {"out_channel": "D1", "thread_id": None}
    refs.remember("teams-29:u", "botframework", {"serviceUrl": "https://smba.trafficmanager.net/amer/"})
    refs.remember("teams-29:u", "botframework", {"serviceUrl": "https://smba.trafficmanager.net/emea/"})
    assert refs.get("teams-29:u").reference == {"serviceUrl": "https://smba.trafficmanager.net/emea/"}


def test_a_reference_must_be_of_the_channel_its_id_names(refs):
    ids = SessionIds(SECRET)
    for conversation_id, channel in [
        (ids.issue(sessions.REST), "botframework"),
        ("U1_D1", "slack"),
        ("teams-29:u", "slack"),
        (ids.issue(sessions.WEB), "socketio"),
    ]:
        with pytest.raises(ValueError):
            refs.remember(conversation_id, channel, {"out_channel": "C1"})
        assert refs.get(conversation_id) is None
    with pytest.raises(ValueError):
        refs.remember("slack-U1_D1", "slack", {"blob": "x" * 5000})


def test_a_second_store_process_sees_the_reference(refs, tmp_path):
    from bot.db.engine import Database
    from bot.handoff.conversation_refs import ConversationRefs

    refs.remember("slack-U2_C2_1.2", "slack", {"out_channel": "C2", "thread_id": "1.2"})
    other = Database(f"sqlite:///{tmp_path / 'refs.db'}")
    try:
        assert ConversationRefs(other).get("slack-U2_C2_1.2").reference["thread_id"] == "1.2"
    finally:
        other.dispose()
