"""The Rasa-server side of the hand-off: routing user messages, and what agents' actions do to a chat.

One ``HandoffService`` per Rasa server process, created with the server's other services when it
starts (``bot.server.services``). It works on the hand-off tickets (``bot.handoff.tickets``: tickets,
messages, events) and knows the running Rasa agent, so it can:

* route each incoming user message: to the bot, or, while a ticket is open, to the specialist (the
  message is stored for the agent console and still logged in the paused tracker, and the bot stays
  silent), letting "it's fixed" or "cancel" close the ticket and resume the bot;
* apply an agent's claim / reply / hand-back / close to the conversation: the ``handoff_status`` slot
  follows the ticket, the agent's words are appended to the tracker as bot utterances (so the
  transcript is whole) and pushed to the user's channel when it can take pushes (socketio, Slack,
  Teams); REST clients collect them from ``GET /webhooks/rest/messages``.

Where a push goes is decided on the server only: the channel is the one the conversation id's
prefix names (``bot.sessions.channel_of``: ids are server-issued or built by a channel from a
verified request), and a Slack / Teams destination is the conversation reference that channel
stored after verifying a request (``bot.handoff.conversation_refs``). A ticket's ``channel`` field,
the tracker's metadata and anything else a client sent are never used to pick where a message goes.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed, Event, SlotSet

from bot import sessions
from bot.handoff.conversation_refs import ConversationRefs
from bot.handoff.tickets import TicketStore
from bot.handoff.views import TicketView
from bot.in_thread import in_thread
from bot.redaction import redact
from bot.server.request_guards import RequestGuards

logger = logging.getLogger(__name__)

END_INTENTS = {"fixed_it", "stop"}
END_CONFIDENCE = 0.8

# What the user sees when a specialist joins, leaves or closes (the agent's name is filled in).
JOINED = "{agent} from our bank-feed team has joined the chat and can see everything so far."
HANDED_BACK = "{agent} has handed you back to the assistant. Is your bank feed working now?"
CLOSED = "{agent} has closed this conversation. If the bank feed acts up again, just write here."
#: Said once, to the customer's first message while their ticket waits (then the bot stays silent).
RECEIVED = "Thanks: that has reached the specialist, who will reply here."
HANDED_BACK_BUTTONS = [
    {"title": "Yes, it's fixed", "payload": "/fixed_it"},
    {"title": "No, still failing", "payload": "/deny"},
    {"title": "Talk to a specialist again", "payload": "/ask_human"},
]


def said_by(agent_name: str, text: str) -> str:
    """A specialist's message as the customer reads it: "Dana: ..."."""
    return f"{agent_name}: {text}"


def socket_message(text: str, custom: Dict[str, Any], buttons: Optional[List[Dict[str, str]]] = None) -> Dict[str, Any]:
    """A message pushed to a socket.io client in the shape of Rasa's own ``bot_uttered`` messages:
    ``text``, ``quick_replies``, and our custom fields under ``metadata`` (a hand-off banner's
    ``handoff_event`` and ``agent_name``, a specialist's ``sender``, a notice's ``outage_event``), so any
    Rasa client (rasa-webchat, ...) shows the text and ours reads the rest."""
    message: Dict[str, Any] = {"text": text}
    if buttons:
        message["quick_replies"] = buttons
    if custom:
        message["metadata"] = dict(custom)
    return message


def resumed(handoff_status: str) -> List[Event]:
    """Events that give the conversation back to the bot.

    The pause cut the bot's turn short; ending it with ``action_listen`` makes the user's next
    message a fresh turn for the dialogue policies."""
    return [ConversationResumed(), SlotSet("handoff_status", handoff_status), ActionExecuted(ACTION_LISTEN_NAME)]


class HandoffService:
    """The hand-off of one Rasa server process (built once, by ``bot.server.services.Services``)."""

    def __init__(self, app: Any, tickets: TicketStore, refs: ConversationRefs):
        self.app = app
        self.tickets = tickets
        self.refs = refs

    run = staticmethod(in_thread)  # a blocking store call, in a worker thread

    @property
    def agent(self) -> Any:
        return self.app.ctx.agent

    async def remember_reference(self, conversation_id: str, channel: str, reference: Dict[str, Any]) -> None:
        """Stores where a conversation is reached; call it only after the request was verified.
        A database failure is logged: the user's message is still answered."""
        try:
            await self.run(self.refs.remember, conversation_id, channel, reference)
        except Exception:
            logger.exception("Could not store the %s conversation reference.", channel)

    # ------------------------------------------------------------------ routing user messages
    async def route(self, message: UserMessage, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Tuple[Any, bool]:
        """Sends ``message`` to the bot, or to the specialist handling the conversation.

        Returns what the bot's handler returned, and whether the message went to a specialist."""
        try:
            ticket = await self.run(self.tickets.open_ticket_for, message.sender_id)
        except Exception:  # the hand-off database is down: the bot must still answer
            logger.exception("Product database unavailable (tickets); the message goes to the bot.")
            return await on_new_message(message), False
        if ticket is None:
            return await on_new_message(message), False

        text = message.text or ""
        from bot.handoff.desk import shown_text  # a clicked button reads as its title, not its payload

        stored = redact(shown_text(text, {b["payload"]: b["title"] for b in HANDED_BACK_BUTTONS}))[:10_000]
        await self.run(self.tickets.add_message, ticket.id, "user", stored or "(empty message)")
        ended = await self._ends_handoff(text)
        if ended:
            await self.run(self.tickets.close, ticket.id, "user", "The user said it is fixed or cancelled.")
            await self._update_tracker(message.sender_id, resumed("closed"))
        # paused trackers log the message and the bot stays silent; a resumed one answers it
        result = await on_new_message(message)
        if not ended and ticket.status == "waiting":
            await self._acknowledge_first(ticket, message)
        return result, not ended

    async def _acknowledge_first(self, ticket: TicketView, message: UserMessage) -> None:
        """One short acknowledgement, for the customer's first message while the ticket waits for a
        specialist: they know it arrived; every later message gets the silence of a waiting chat."""
        try:
            earlier = await self.run(self.tickets.messages, ticket.id)
            if sum(1 for m in earlier if m.sender == "user") != 1:
                return
            await self._update_tracker(
                message.sender_id, [BotUttered(RECEIVED, data={}, metadata={"handoff": {"handoff_event": "received"}})]
            )
            if message.output_channel is not None:
                await message.output_channel.send_text_message(message.sender_id, RECEIVED)
        except Exception:
            logger.exception("Could not acknowledge a message to a waiting ticket.")

    async def _ends_handoff(self, text: str) -> bool:
        stripped = text.strip()
        if stripped.startswith("/"):
            return stripped[1:].split("{", 1)[0] in END_INTENTS
        try:
            parsed = await self.agent.parse_message(stripped)
        except Exception:
            logger.exception("Could not parse a message during hand-off.")
            return False
        intent = parsed.get("intent") or {}
        return intent.get("name") in END_INTENTS and (intent.get("confidence") or 0) >= END_CONFIDENCE

    # ------------------------------------------------------------------ agents' actions
    async def claim(self, ticket_id: int, agent: Any) -> TicketView:
        ticket = await self.run(self.tickets.claim, ticket_id, agent.id)
        text = JOINED.format(agent=agent.display_name)
        await self._tell_user(
            ticket,
            text,
            {"handoff_event": "agent_joined", "agent_name": agent.display_name},
            [SlotSet("handoff_status", "assigned")],
        )
        return ticket

    async def reply(self, ticket_id: int, agent: Any, text: str) -> Any:
        message = await self.run(self.tickets.add_message, ticket_id, "agent", text, agent.id)
        ticket = await self.run(self.tickets.get_ticket, ticket_id)
        # the customer's copy names the specialist in its text, so any client shows who wrote it; the
        # widget shows the name as a label and the words alone (``agent_text``)
        await self._tell_user(
            ticket, said_by(agent.display_name, text), {"sender": "agent", "agent_name": agent.display_name, "agent_text": text}
        )
        return message

    async def hand_back(self, ticket_id: int, agent: Any, note: Optional[str]) -> TicketView:
        ticket = await self.run(self.tickets.return_to_bot, ticket_id, agent.id, note)
        events = resumed("returned_to_bot")
        await self._tell_user(
            ticket,
            HANDED_BACK.format(agent=agent.display_name),
            {"handoff_event": "agent_left", "agent_name": agent.display_name},
            events,
            buttons=HANDED_BACK_BUTTONS,
        )
        return ticket

    async def close(self, ticket_id: int, agent: Any, note: str) -> TicketView:
        ticket = await self.run(self.tickets.close, ticket_id, "agent", note, agent.id)
        events = resumed("closed")
        await self._tell_user(
            ticket, CLOSED.format(agent=agent.display_name), {"handoff_event": "closed", "agent_name": agent.display_name}, events
        )
        return ticket

    # ------------------------------------------------------------------ conversation side effects
    async def _tell_user(
        self,
        ticket: TicketView,
        text: str,
        custom: Dict[str, Any],
        events: Optional[List[Event]] = None,
        buttons: Optional[List[Dict[str, str]]] = None,
    ) -> None:
        """Tells the ticket's user ``text``; notices (joined, handed back, closed) are also kept in
        the store as ``system`` messages, so the console shows them and REST clients collect them."""
        if "handoff_event" in custom:
            await self.run(self.tickets.add_message, ticket.id, "system", text)
        await self.tell(ticket.conversation_id, ticket.channel, text, custom, events, buttons)

    async def tell(
        self,
        conversation_id: str,
        channel: str,
        text: str,
        custom: Dict[str, Any],
        events: Optional[List[Event]] = None,
        buttons: Optional[List[Dict[str, str]]] = None,
    ) -> None:
        """Records ``text`` in the tracker (plus ``events``) and pushes it to the user's channel."""
        data: Dict[str, Any] = {"custom": {**custom, "text": text}}
        if buttons:
            data["buttons"] = buttons
        await self._update_tracker(
            conversation_id, list(events or []) + [BotUttered(text, data=data, metadata={"handoff": custom})]
        )
        await self._push(conversation_id, channel, text, custom, buttons)

    async def _update_tracker(self, conversation_id: str, events: List[Event]) -> None:
        agent = self.agent
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.processor.fetch_tracker_with_initial_session(conversation_id)
            for event in events:
                tracker.update(event)
            await agent.processor.save_tracker(tracker)

    async def _push(
        self, conversation_id: str, channel_name: str, text: str, custom: Dict[str, Any], buttons: Optional[list]
    ) -> None:
        """Delivers to channels that accept pushes; REST clients poll for agent messages instead.

        The channel comes from the conversation id's prefix (``channel_name``, what the ticket or
        notice says, only has to agree); Slack and Teams get the conversation reference they stored
        from a verified request (``push_to_conversation(conversation_id, reference, text, buttons)``).
        Without one nothing is pushed: the message is in the tracker and the store."""
        verified = sessions.channel_of(conversation_id)
        if verified is None:
            logger.warning("Not pushing to conversation %s: its id names no channel.", conversation_id)
            return
        if channel_name != verified:
            logger.warning(
                "Conversation %s is of the %s channel, not %s: delivering on %s only.",
                conversation_id,
                verified,
                channel_name,
                verified,
            )
        channels = getattr(self.app.ctx, "input_channels", None) or []
        channel = next((c for c in channels if c.name() == verified), None)
        if channel is None or verified == "rest":
            return
        try:
            if hasattr(channel, "push_to_conversation"):
                ref = await self.run(self.refs.get, conversation_id)
                if ref is None or ref.channel != verified:
                    logger.warning(
                        "No verified %s conversation reference for %s: the message stays in the transcript only.",
                        verified,
                        conversation_id,
                    )
                    return
                await channel.push_to_conversation(conversation_id, ref.reference, text, buttons)
            elif verified == "socketio" and RequestGuards.of(self.app).session_ids.verify(conversation_id, sessions.WEB):
                output = channel.get_output_channel()
                if output is not None:
                    await output.send_custom_json(conversation_id, socket_message(text, custom, buttons))
        except Exception:
            # the message is in the tracker and the store; the user sees it when they reconnect
            logger.exception("Could not push a message to the %s channel.", verified)
