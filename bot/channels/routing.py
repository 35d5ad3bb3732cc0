"""Puts the hand-off router in front of a channel's ``on_new_message``."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint

from bot.handoff.service import HandoffService

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class HandoffRouter:
    """Callable used as the channel's ``on_new_message``: the bot, or the specialist when handed off."""

    def __init__(self, on_new_message: OnNewMessage):
        self.on_new_message = on_new_message
        self.service: Optional[HandoffService] = None

    def attach(self, blueprint: Blueprint) -> Blueprint:
        """Installs the server's hand-off service when the blueprint's server starts."""

        async def install(app: Any, _loop: Any) -> None:
            self.service = await HandoffService.install(app)

        blueprint.listener("before_server_start")(install)
        return blueprint

    async def __call__(self, message: UserMessage) -> Any:
        if self.service is None:  # not mounted on a server (e.g. in-process tests): straight to the bot
            return await self.on_new_message(message)
        return await self.service.route(message, self.on_new_message)
