"""The socketio channel (website chat widget) with hand-off routing.

Several Rasa replicas: set ``SOCKETIO_REDIS_URL`` (e.g. ``redis://redis:6379/0``) and every replica's
Socket.IO server shares its client list through Redis pub/sub (python-socketio's
``AsyncRedisManager``), so a message emitted on one replica (an agent's reply pushed from the
console, a back-online notice) reaches a widget whose socket is held by another. Replicas of one
deployment must use the same channel, ``SOCKETIO_REDIS_CHANNEL`` (default ``bankfeed-socketio``):
Redis pub/sub ignores the database number, so two deployments on one Redis need different channels.
Several processes on one machine (``make run`` with WORKERS > 1: ``WORKER_INDEX`` / ``WORKER_COUNT``
set by scripts/run.sh): every session id starts with the process's index (nginx routes each
``/socket.io/`` request to the process holding its session) and emits are shared with the other
processes over unix datagram sockets, no Redis needed (``bot.server.channels.socketio_workers``).
Neither set (a single process), each process only reaches its own sockets.

Sessions: ``session_request`` keeps a ``session_id`` only when it is a valid server-issued widget id
(``web-...``, ``bot.sessions``; so a reload continues the conversation); anything else (none, made
up, another channel's id, someone's REST id) gets a fresh one, which ``session_confirm`` carries and
the client must use from then on. The socket is bound to its confirmed id on this server, and a
``user_uttered`` whose ``session_id`` is not that id is refused: a client can only read and write the
conversation it was given. A message's channel is always socketio and only allow-listed metadata is
kept (``inbound.CLIENT_METADATA``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from rasa.core.channels.socketio import SocketIOOutput as RasaSocketIOOutput
from sanic import Blueprint

from bot import client_address, ratelimit, sessions
from bot.server.channels import cors, inbound, socketio_workers
from bot.server.channels.routing import HandoffRouter
from bot.server.handoff import socket_message
from bot.server.request_guards import RequestGuards

logger = logging.getLogger(__name__)

DEFAULT_REDIS_CHANNEL = "bankfeed-socketio"
NO_SESSION = "this connection has no session yet: send session_request first."
WRONG_SESSION = "this message's session_id is not the one this connection was given (see session_confirm)."


def redis_client_manager(env: Optional[Dict[str, str]] = None) -> Optional[Any]:
    """An ``AsyncRedisManager`` when ``SOCKETIO_REDIS_URL`` is set, else None (in-process manager)."""
    env = os.environ if env is None else env
    url = (env.get("SOCKETIO_REDIS_URL") or "").strip()
    if not url:
        return None
    from socketio import AsyncRedisManager

    channel = (env.get("SOCKETIO_REDIS_CHANNEL") or "").strip() or DEFAULT_REDIS_CHANNEL
    return AsyncRedisManager(url, channel=channel)


class SocketIOOutput(RasaSocketIOOutput):
    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        # Rasa 3.6 passes the message as keyword arguments to ``AsyncServer.emit`` (a TypeError);
        # the widget expects it as the event's data, like every other bot message.
        await self._send_message(recipient_id, json_message)


class SocketIOInput(RasaSocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "socketio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "SocketIOInput":
        channel = super().from_credentials(credentials)
        # origins allowed besides CHAT_ALLOWED_ORIGINS and the server's own (see bot/server/channels/cors.py)
        channel.cors_allowed_origins = (credentials or {}).get("cors_allowed_origins")
        return channel

    def get_output_channel(self) -> Optional[OutputChannel]:
        return SocketIOOutput(self.sio, self.bot_message_evt) if self.sio is not None else super().get_output_channel()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        router = HandoffRouter(on_new_message)
        blueprint = super().blueprint(router)
        # the server's guards, taken when it starts (a misconfigured secret stops it then)
        guards: List[RequestGuards] = []

        @blueprint.listener("before_server_start")
        async def take_guards(app: Any, _loop: Any) -> None:
            guards[:] = [RequestGuards.of(app)]

        def ids() -> sessions.SessionIds:
            return guards[0].session_ids

        sio = self.sio
        cors.protect_socketio(sio, getattr(self, "cors_allowed_origins", None))  # Rasa disables the Origin check

        place = socketio_workers.topology()  # a bad WORKER_INDEX / WORKER_COUNT stops the server at start
        if place is not None:
            # nginx routes a session's requests by this prefix (scripts/run.sh)
            socketio_workers.install_sid_prefix(sio.eio, place.index)
        manager = redis_client_manager()
        if manager is not None:
            # Rasa builds the AsyncServer itself; swap its client manager before any client connects
            # (the server initialises it, and so starts the Redis listener, on the first connection).
            sio.manager = manager
            manager.set_server(sio)
            sio.manager_initialized = False
            logger.info("Socket.IO clients are shared across replicas through Redis (channel '%s').", manager.channel)
        else:
            local = socketio_workers.local_client_manager()
            if local is not None:
                sio.manager = local
                local.set_server(sio)
                # listening from the start (not from this process's first connection): the other
                # processes' emits never queue up unread
                sio.manager_initialized = True

                async def open_local(app: Any, _loop: Any) -> None:
                    local.initialize()

                async def close_local(app: Any, _loop: Any) -> None:
                    local.close()

                blueprint.listener("after_server_start")(open_local)
                blueprint.listener("after_server_stop")(close_local)

        # Replaces Rasa 3.6's handler, which calls the coroutine ``AsyncServer.enter_room`` (python-socketio
        # 5.x) without awaiting it (the browser never joined its session's room, so no bot reply reached
        # it), and which kept whatever session id the client named.
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Optional[Dict] = None) -> None:
            data = data if isinstance(data, dict) else {}
            asked = data.get("session_id")
            session_id = asked if ids().verify(asked, sessions.WEB) else ids().issue(sessions.WEB)
            async with sio.session(sid, namespace=self.namespace) as session:
                previous = session.get("session_id")
                session["session_id"] = session_id
            # the session's room: where its replies, a specialist's messages and notices are emitted
            if previous and previous != session_id:
                await sio.leave_room(sid, previous, namespace=self.namespace)
            await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        async def refuse(sid: Text, reason: str) -> None:
            await sio.emit(
                self.bot_message_evt,
                socket_message(f"Sorry, I couldn't read that: {reason}", {"error": True}),
                room=sid,
                namespace=self.namespace,
            )

        # Replaces Rasa's handler too: it crashes on a malformed message (non-object data, bad
        # metadata JSON) and passes any size on. Bad input gets a clear answer on the socket.
        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Any = None) -> None:
            if isinstance(data, dict) and "message" in data and data["message"] is None:
                # nothing was said: rasa-webchat's start-up "init payload" when the page set none
                # (a message without the field at all is malformed, and told so below)
                return
            try:
                session_id, text, metadata = inbound.socket_payload(data, self.session_persistence)
            except inbound.InboundError as exc:
                await refuse(sid, str(exc))
                return
            confirmed = (await sio.get_session(sid, namespace=self.namespace)).get("session_id")
            if not confirmed and not self.session_persistence:  # a conversation per connection
                confirmed = ids().issue(sessions.WEB)
                async with sio.session(sid, namespace=self.namespace) as session:
                    session["session_id"] = confirmed
                await sio.enter_room(sid, confirmed, namespace=self.namespace)
            if not confirmed:
                await refuse(sid, NO_SESSION)
                return
            if self.session_persistence and session_id != confirmed:
                await refuse(sid, WRONG_SESSION)
                return

            # over a per-client limit: told to resend after a wait, and the message is not processed
            address = client_address.from_environ(sio.get_environ(sid, namespace=self.namespace))
            decision = await guards[0].limiter.check_all(ratelimit.chat_checks(confirmed, address))
            if not decision.allowed:
                await sio.emit(
                    self.bot_message_evt,
                    socket_message(decision.message(), {"error": True, "retry_after": decision.retry_after}),
                    room=sid,
                    namespace=self.namespace,
                )
                return
            metadata["client_key"] = client_address.client_key(address)  # set by us, never by the client
            message = UserMessage(
                text, SocketIOOutput(sio, self.bot_message_evt), confirmed, input_channel=self.name(), metadata=metadata
            )
            await router(message)

        return router.attach(blueprint)
