"""Server-wide HTTP rules, put on the Rasa app when it starts (by the agent console's channel, which
every deployment mounts): the chat CORS allow-list (``bot.server.channels.cors``), the API token in the
``Authorization`` header (``bot.server.api_token``) and token-free logs (``bot.log_masking``). It also
logs whether the patches of Rasa internals are in place in this process (``bot.server.rasa_patches``)."""

from __future__ import annotations

from typing import Any

from bot import log_masking
from bot.server import api_token, rasa_patches
from bot.server.channels import cors


def install(app: Any) -> None:
    """Once per server process (each Sanic worker runs its listeners)."""
    if getattr(app.ctx, "http_policy_installed", False):
        return
    app.ctx.http_policy_installed = True
    log_masking.install()
    log_masking.apply_access_log_setting()
    cors.install(app)
    api_token.install_bearer_header(app)
    rasa_patches.report()
