"""The socketio channel (website chat widget) with hand-off routing."""
from __future__ import annotations

import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from rasa.core.channels.socketio import SocketIOOutput as RasaSocketIOOutput
from sanic import Blueprint

from bot.channels.routing import HandoffRouter


class SocketIOOutput(RasaSocketIOOutput):
    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        # Rasa 3.6 passes the message as keyword arguments to ``AsyncServer.emit`` (a TypeError);
        # the widget expects it as the event's data, like every other bot message.
        await self._send_message(recipient_id, json_message)


class SocketIOInput(RasaSocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "socketio"

    def get_output_channel(self) -> Optional[OutputChannel]:
        return SocketIOOutput(self.sio, self.bot_message_evt) if self.sio is not None else super().get_output_channel()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        router = HandoffRouter(on_new_message)
        blueprint = super().blueprint(router)
        sio = self.sio

        # Replaces Rasa 3.6's handler, which calls the coroutine ``AsyncServer.enter_room`` (python-socketio
        # 5.x) without awaiting it: the browser never joined its session's room, so no bot reply reached it.
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Optional[Dict]) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id") or uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        return router.attach(blueprint)
