"""Mounts the agent console on the Rasa server at ``/agent/`` (configured in credentials.yml).

It is an input channel only in Rasa's plumbing sense (the way to add routes to the server):
users never talk to the bot through it.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint

from bot.console.api import console_blueprint


class AgentConsoleInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "agent_console"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "AgentConsoleInput":
        return cls()

    def url_prefix(self) -> str:
        return "/agent"  # absolute: Rasa joins it onto /webhooks/, which leaves /agent

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return console_blueprint()
