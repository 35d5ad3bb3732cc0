"""The Microsoft Teams (Bot Framework) channel (``POST /webhooks/botframework/webhook``), configured in
credentials.yml as ``bot.server.channels.teams.BotFrameworkInput``.

- ``settings``: :class:`BotFrameworkSettings` (credentials.yml with environment fallbacks);
- ``verification``: the Bot Framework JWT on every request, Microsoft's OpenID signing keys;
- ``inbound``: :class:`BotFrameworkInput`, the webhook: activities, shared files, hand-off pushes;
- ``outbound``: the Bot Connector client (token, replies), :class:`TeamsOutput`, attachment downloads;
- ``cards``: hero cards for buttons, converted CSVs as attachments.

Shared files go through the flow shared with Slack, ``bot.server.channels.file_share``.
Set-up: docs/teams.md.
"""

from bot.server.channels.teams.cards import card_action, hero_cards
from bot.server.channels.teams.inbound import BotFrameworkInput
from bot.server.channels.teams.outbound import BotConnector, TeamsOutput
from bot.server.channels.teams.settings import (
    DEFAULT_SERVICE_URL_HOSTS,
    MULTI_TENANT_TOKEN_URL,
    SINGLE_TENANT_TOKEN_URL,
    BotFrameworkSettings,
)

__all__ = [
    "DEFAULT_SERVICE_URL_HOSTS",
    "MULTI_TENANT_TOKEN_URL",
    "SINGLE_TENANT_TOKEN_URL",
    "BotConnector",
    "BotFrameworkInput",
    "BotFrameworkSettings",
    "TeamsOutput",
    "card_action",
    "hero_cards",
]
