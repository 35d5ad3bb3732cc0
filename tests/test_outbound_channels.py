"""The outbound policy in the Slack and Teams channels, in process, against the real local fakes:
at the production policy they receive nothing; Teams sends its token only to allowed service hosts."""

from __future__ import annotations

import dataclasses
import logging
import secrets

import pytest

from bot.outbound import OutboundPolicy
from bot.server.channels.file_replies import FileRefused
from bot.server.channels.slack import SlackInput
from bot.server.channels.teams import DEFAULT_SERVICE_URL_HOSTS, BotFrameworkInput, BotFrameworkSettings
from tests.fake_botframework import FakeConnector, FakeFileHost, FakeTokenService
from tests.fake_slack import FakeSlack

TOKEN = "xoxb-" + secrets.token_hex(8)
APP_ID, APP_PASSWORD = "app-0001", "pw-" + secrets.token_hex(6)
LOCAL = OutboundPolicy(allow=("127.0.0.1",))  # what the test stack configures (tests/servers.py)


# ---------------------------------------------------------------------------------------------------- Slack
@pytest.fixture(scope="module")
def slack():
    with FakeSlack(TOKEN) as fake:
        yield fake


def slack_channel(fake: FakeSlack, policy: OutboundPolicy) -> SlackInput:
    channel = SlackInput.from_credentials({"slack_token": TOKEN, "slack_signing_secret": "s", "slack_api_url": fake.api_url})
    channel.downloads.policy = policy.replace(max_bytes=channel.max_file_bytes)
    return channel


async def test_slack_downloads_send_nothing_at_the_default_policy(slack):
    shared = slack.add_file("x.csv", b"Date,Description,Amount\n01/02/2024,x,1.00\n")
    channel = slack_channel(slack, OutboundPolicy())
    with pytest.raises(FileRefused):
        await channel.downloads.download(shared["url_private_download"])
    assert slack.downloads_of(shared["id"]) == []
    # the same file with the test stack's explicit allowance: fetched, with the token
    assert (
        await slack_channel(slack, LOCAL).downloads.download(shared["url_private_download"])
        == b"Date,Description,Amount\n01/02/2024,x,1.00\n"
    )
    assert [d.authorized for d in slack.downloads_of(shared["id"])] == [True]


async def test_slack_token_never_goes_to_a_non_public_files_host(slack):
    channel = slack_channel(slack, OutboundPolicy())
    for url in (
        "https://files.slack.com.evil.example/x",
        "http://files.slack.com/x",
        "https://files.slack.com:8443/x",
        "https://user@files.slack.com/x",
        "https://10.0.0.1/x",
    ):
        assert not channel.downloads.may_send_token_to(url), url
    assert channel.downloads.may_send_token_to("https://files.slack.com/files-pri/T1-F1/download/x.csv")
    assert not channel.downloads.may_send_token_to(slack.api_url + "files/x")  # the local API host: not at this policy
    assert slack_channel(slack, LOCAL).downloads.may_send_token_to(slack.api_url + "files/x")


# ---------------------------------------------------------------------------------------------------- Teams
@pytest.fixture(scope="module")
def teams_fakes():
    tokens = FakeTokenService(APP_ID, APP_PASSWORD).start()
    connector = FakeConnector(tokens).start()
    files = FakeFileHost().start()
    yield tokens, connector, files
    for server in (files, connector, tokens):
        server.stop()


def teams_channel(tokens: FakeTokenService, policy: OutboundPolicy, **credentials) -> BotFrameworkInput:
    settings = BotFrameworkSettings.from_credentials(
        {"app_id": APP_ID, "app_password": APP_PASSWORD, "token_url": tokens.token_url(), "http_timeout": 2, **credentials}
    )
    return BotFrameworkInput(settings=dataclasses.replace(settings, outbound=policy))


def received(tokens: FakeTokenService, connector: FakeConnector) -> int:
    return len(tokens.token_requests()) + len(connector.posts) + len(connector.rejected) + len(connector.attachment_gets)


async def test_teams_sends_nothing_at_the_default_policy(teams_fakes):
    tokens, connector, files = teams_fakes
    before = received(tokens, connector)
    channel = teams_channel(tokens, OutboundPolicy(), service_url_hosts="127.0.0.1")
    service_url = connector.base_url + "/amer/"
    assert await channel.connector.post_activity(service_url, "a:1", {"type": "message", "text": "hi"}) is None
    attachment = connector.add_attachment(b"Date,Description,Amount\n")
    file_url = files.add("x.csv", b"Date,Description,Amount\n")
    for url in (attachment, file_url):
        with pytest.raises(FileRefused):
            await channel.downloads.download(url, service_url)
    assert received(tokens, connector) == before and files.requests_for(file_url) == []


@pytest.mark.parametrize(
    "service_url",
    [
        "https://smba.trafficmanager.net.evil.example/amer/",
        "https://evil.example/amer/",
        "https://botframework.com.evil.example/",
        "http://smba.trafficmanager.net/amer/",  # the token never goes in clear text to a public host
        "https://smba.trafficmanager.net:8443/amer/",
        "https://169.254.169.254/",
        "https://user:pw@smba.trafficmanager.net/amer/",
        "ftp://smba.trafficmanager.net/",
    ],
)
async def test_teams_service_url_must_be_an_allowed_bot_framework_host(teams_fakes, service_url, caplog):
    tokens, connector, _ = teams_fakes
    before = received(tokens, connector)
    channel = teams_channel(tokens, OutboundPolicy())
    with caplog.at_level(logging.ERROR, logger="bot.server.channels.teams"):
        assert await channel.connector.post_activity(service_url, "a:1", {"type": "message", "text": "hi"}) is None
    assert "Nothing was sent" in caplog.text or "bad serviceUrl" in caplog.text
    assert received(tokens, connector) == before  # not even a token was requested


def test_teams_service_host_allow_list_defaults_and_configuration(monkeypatch):
    connector = teams_channel(FakeTokenService(APP_ID, APP_PASSWORD), OutboundPolicy()).connector
    assert connector.settings.service_url_hosts == DEFAULT_SERVICE_URL_HOSTS
    for ok in (
        "https://smba.trafficmanager.net/amer/",
        "https://smba.trafficmanager.net/teams/",
        "https://smba.infra.gcc.teams.microsoft.com/teams",
        "https://smba.infra.gov.teams.microsoft.us/teams",
        "https://smba.infra.dod.teams.microsoft.us/teams",
        "https://webchat.botframework.com/",
    ):
        assert connector.may_send_token_to(ok) is None, ok
    monkeypatch.setenv("BOTFRAMEWORK_SERVICE_URL_HOSTS", "bots.example.net, *.bots.example.org")
    s = BotFrameworkSettings.from_credentials({"app_id": "a", "app_password": "b"})
    assert s.service_url_hosts == ("bots.example.net", "*.bots.example.org")
    s = BotFrameworkSettings.from_credentials({"app_id": "a", "app_password": "b", "service_url_hosts": ["x.example"]})
    assert s.service_url_hosts == ("x.example",)  # credentials.yml first, then the environment


async def test_teams_with_the_test_allowance_posts_and_downloads(teams_fakes):
    tokens, connector, files = teams_fakes
    channel = teams_channel(tokens, LOCAL, service_url_hosts="127.0.0.1")
    service_url = connector.base_url + "/amer/"
    answer = await channel.connector.post_activity(service_url, "a:ok", {"type": "message", "text": "hi"})
    assert answer and answer["id"] and connector.activities("a:ok")[-1]["text"] == "hi"
    attachment = connector.add_attachment(b"Date,Description,Amount\n")
    assert await channel.downloads.download(attachment, service_url) == b"Date,Description,Amount\n"
    assert connector.attachment_gets[-1]["authorized"] is True
    # the service host not allow-listed: no token goes with the download, nothing is posted
    other = teams_channel(tokens, LOCAL, service_url_hosts="smba.trafficmanager.net")
    with pytest.raises(FileRefused):
        await other.downloads.download(connector.add_attachment(b"x"), service_url)
    assert connector.attachment_gets[-1]["authorized"] is False
    assert await other.connector.post_activity(service_url, "a:no", {"type": "message", "text": "hi"}) is None
    assert connector.activities("a:no") == []


async def test_teams_token_url_goes_through_the_policy(teams_fakes, caplog):
    tokens, connector, _ = teams_fakes
    before = len(tokens.token_requests())
    channel = teams_channel(
        tokens, OutboundPolicy(allow=(f"127.0.0.1:{connector.base_url.rsplit(':', 1)[1]}",)), service_url_hosts="127.0.0.1"
    )
    with caplog.at_level(logging.ERROR, logger="bot.server.channels.teams"):
        assert await channel.connector.post_activity(connector.base_url + "/amer/", "a:t", {"type": "message"}) is None
    assert "Could not get BotFramework token" in caplog.text and "outbound policy refuses" in caplog.text
    assert len(tokens.token_requests()) == before and connector.activities("a:t") == []
