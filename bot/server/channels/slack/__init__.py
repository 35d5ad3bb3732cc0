"""The Slack channel (``POST /webhooks/slack/webhook``), configured in credentials.yml as
``bot.server.channels.slack.SlackInput``.

- ``verification``: request signatures (5-minute replay window) and each delivery handled once
  (retries, twin events; claims in the product database);
- ``inbound``: :class:`SlackInput`, the webhook: Events API messages, button clicks, shared files,
  hand-off pushes;
- ``outbound``: :class:`SlackBot`, the output channel on the Web API client, and shared files'
  downloads with the bot token;
- ``cards``: Block Kit for buttons.

Shared files go through the flow shared with Teams, ``bot.server.channels.file_share``.
Set-up: docs/slack.md.
"""

from bot.server.channels.slack.inbound import SlackInput
from bot.server.channels.slack.outbound import DEFAULT_API_URL, SlackBot
from bot.server.channels.slack.verification import verify_signature

__all__ = ["DEFAULT_API_URL", "SlackBot", "SlackInput", "verify_signature"]
