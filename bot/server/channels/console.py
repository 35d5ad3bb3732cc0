"""Mounts the agent console on the Rasa server at ``/agent/`` (configured in credentials.yml).

It is an input channel only in Rasa's plumbing sense (the way to add routes to the server):
users never talk to the bot through it.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint

from bot.server.channels.routes import RoutesChannel
from bot.server.console.api import console_blueprint


class AgentConsoleInput(RoutesChannel):
    prefix = "/agent"

    @classmethod
    def name(cls) -> str:
        return "agent_console"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return console_blueprint()
