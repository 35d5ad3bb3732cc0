"""Puts the hand-off router in front of a channel's ``on_new_message``."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from sanic import Blueprint

from bot.server.handoff import HandoffService
from bot.server.services import Services

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class HandoffRouter:
    """Callable used as the channel's ``on_new_message``: the bot, or the specialist when handed off."""

    def __init__(self, on_new_message: OnNewMessage):
        self.on_new_message = on_new_message
        self.services: Optional[Services] = None

    @property
    def service(self) -> Optional[HandoffService]:
        """The server's hand-off service (None until the server started)."""
        return self.services.handoff if self.services is not None else None

    def attach(self, blueprint: Blueprint) -> Blueprint:
        """Installs the server's services when the blueprint's server starts."""

        def installed(services: Services) -> None:
            self.services = services

        return Services.attach(blueprint, on_installed=installed)

    async def remember(self, conversation_id: str, channel: str, reference: Dict[str, Any]) -> None:
        """Stores where the conversation is reached (Slack / Teams, after verifying the request)."""
        if self.service is not None:
            await self.service.remember_reference(conversation_id, channel, reference)

    async def __call__(self, message: UserMessage) -> Any:
        recorder = RecordingOutput(message.output_channel)
        message.output_channel = recorder
        if self.service is None:  # not mounted on a server (e.g. in-process tests): straight to the bot
            result = await self.on_new_message(message)
            handed_off = False
        else:
            result, handed_off = await self.service.route(message, self.on_new_message)
        if not recorder.sent and not handed_off:
            # The bot said nothing (e.g. the action server is down or restarting): never leave the
            # user in silence. Their message is stored; they can simply send it again.
            await recorder.send_text_message(message.sender_id, NO_ANSWER)
        return result


NO_ANSWER = "Sorry, I couldn't finish that just now. Please send your last message again in a moment."


class RecordingOutput(OutputChannel):
    """Wraps a channel's output and notes whether the bot sent anything."""

    def __init__(self, inner: Optional[OutputChannel]):
        self.inner = inner or CollectingOutputChannel()
        self.sent = 0

    @classmethod
    def name(cls) -> str:
        return "recording"

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        self.sent += 1
        await self.inner.send_response(recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        self.sent += 1
        await self.inner.send_text_message(recipient_id, text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
