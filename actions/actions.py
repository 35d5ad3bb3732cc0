"""Rasa SDK actions. Thin by design: they read the tracker and call the core in ``bot/``.

The actions that need the product's services (the database's stores, the bank directory, the site
prober) take an ``ActionServices`` (``bot.desk``); the Rasa SDK builds them without arguments, and
they then share this process's ``PROCESS_SERVICES``. Tests hand each action its own."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, FollowupAction, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.banks.site_prober import ProbeResult
from bot.customer_time import CustomerClock
from bot.desk import ActionServices
from bot.handoff import desk as handoff
from bot.handoff import escalation
from bot.outages.desk import OutageDesk, record_probe
from bot.outages.reminder_desk import ReminderDesk
from bot.redaction import describe, sensitive_kinds
from bot.sessions import channel_of
from bot.troubleshooting import bank_question as bq
from bot.troubleshooting.conversation import BANK_QUESTION, NOT_A_BANK, SKIP_BANK, State, Troubleshooter, Turn, takes_files

logger = logging.getLogger(__name__)

FALLBACK_THRESHOLD = 0.5  # same as the FallbackClassifier in config.yml

#: The services of this action-server process (nothing is loaded or connected before first use).
PROCESS_SERVICES = ActionServices()


class UsesServices:
    """An action that works with ``services`` (this process's unless it was given its own)."""

    def __init__(self, services: Optional[ActionServices] = None) -> None:
        super().__init__()
        self.services = services if services is not None else PROCESS_SERVICES


async def checked_site(services: ActionServices, key: str, url: str) -> ProbeResult:
    """Probes a bank's site; fresh results also feed the outage radar."""
    result = await services.prober.check(key, url)
    if not result.from_cache and result.status != "unknown":
        await record_probe(services, key, result.status)
    return result


def _effective_intent(tracker: Tracker) -> Optional[str]:
    """The intent to act on; for a masked message, what the user meant besides sharing the secret."""
    message = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    if intent != "share_sensitive":
        return intent
    for ranked in message.get("intent_ranking") or []:
        if ranked.get("name") not in ("share_sensitive", "nlu_fallback"):
            return ranked["name"] if ranked.get("confidence", 0) >= FALLBACK_THRESHOLD else "nlu_fallback"
    return "nlu_fallback"


def turn_from_tracker(tracker: Tracker) -> Turn:
    message = tracker.latest_message or {}
    entities: Dict[str, List[str]] = {}
    for entity in message.get("entities") or []:
        entities.setdefault(entity.get("entity"), []).append(entity.get("value"))
    metadata = message.get("metadata") or {}
    user_agent = metadata.get("user_agent") if isinstance(metadata, dict) else None
    intent = _effective_intent(tracker)
    ranking = [(r.get("name"), float(r.get("confidence") or 0.0)) for r in message.get("intent_ranking") or [] if r.get("name")]
    text = message.get("text")
    return Turn(
        intent=intent,
        entities=entities,
        sensitive=bool(entities.get("sensitive_data")),
        user_agent=user_agent if isinstance(user_agent, str) else None,
        text=text if isinstance(text, str) else None,
        ranking=ranking,
        message_id=message.get("message_id") if isinstance(message.get("message_id"), str) else None,
        takes_files=takes_files(conversation_channel(tracker), metadata),
    )


def conversation_channel(tracker: Tracker) -> str:
    """The conversation's channel as its id names it (ids are server-issued or built by the channel
    from verified requests), so a ticket or notice can't claim another; ids of no channel (made before
    they were namespaced) fall back to the latest message's channel."""
    return channel_of(tracker.sender_id) or tracker.get_latest_input_channel() or "rest"


def dispatch(dispatcher: CollectingDispatcher, messages: List[Dict[str, Any]]) -> None:
    for message in messages:
        message = dict(message)
        response = message.pop("response", None)
        if response:
            dispatcher.utter_message(response=response, **message)
        else:
            dispatcher.utter_message(**message)


class ActionTroubleshoot(UsesServices, Action):
    """Every user turn about the problem: diagnose, run checks, present the next fix."""

    def name(self) -> Text:
        return "action_troubleshoot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        services = self.services
        desk = OutageDesk(
            services,
            tracker.sender_id,
            conversation_channel(tracker),
            metadata.get("client_key") if isinstance(metadata, dict) else None,
            CustomerClock.from_metadata(metadata),
        )
        reminders = ReminderDesk(services, tracker.sender_id, conversation_channel(tracker))
        troubleshooter = Troubleshooter(
            services.directory, functools.partial(checked_site, services), outages=desk, reminders=reminders
        )
        reply = await troubleshooter.handle(State.from_slots(tracker.slots), turn_from_tracker(tracker))
        dispatch(dispatcher, reply.messages)
        if reply.slots.get("resolved") is True:
            await handoff.record_resolution(services, tracker.sender_id, tracker.slots.get("handoff_status"))
        return [SlotSet(slot, value) for slot, value in reply.slots.items()] + listen_next(tracker, reply.slots)


def listen_next(tracker: Tracker, slots: Dict[Text, Any]) -> List[EventType]:
    """``FollowupAction("action_listen")`` when the rules would predict listening anyway: no bank form
    or escalation asked for (the two flag slots) and no form running (a form interrupted by a question
    is resumed by the RulePolicy, so it must predict). Rasa then skips the policy run after this action:
    measured, the second prediction per message was ~15 % of the server's CPU."""
    if slots.get("needs_bank") or slots.get("escalation_due") or (tracker.active_loop or {}).get("name"):
        return []
    return [FollowupAction("action_listen")]


class ActionEscalate(UsesServices, Action):
    """Hands the conversation to a human specialist: a ticket in the hand-off queue, and the bot pauses.

    ``handoff_status`` goes ``requested`` (summary recorded) then ``waiting`` once the ticket is
    queued; from then on the hand-off router sends the user's messages to the agent console.
    """

    def name(self) -> Text:
        return "action_escalate"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        slots = escalation.handoff_slots(tracker.slots)
        summary = slots["escalation_summary"]
        events: List[EventType] = [SlotSet(slot, value) for slot, value in slots.items()]
        logger.info("Escalating conversation %s: %s", tracker.sender_id, escalation.summary_text(summary))
        try:
            queued = await asyncio.to_thread(
                handoff.queue,
                self.services.tickets,
                tracker.sender_id,
                conversation_channel(tracker),
                summary,
                handoff.transcript(tracker.events),
            )
        except Exception:  # the hand-off database is unreachable: say so, keep the bot answering
            logger.exception("Could not open a hand-off ticket for %s", tracker.sender_id)
            dispatcher.utter_message(response="utter_handoff_unavailable")
            return events
        dispatcher.utter_message(response="utter_handoff_waiting", **queued.wording())
        return events + [SlotSet("handoff_status", "waiting"), ConversationPaused()]


class ActionSessionStart(Action):
    """Starts a session, carrying the slots over. A customer who comes back (a later session with a
    problem in progress) is marked ``returning``: their first message is answered with a welcome back
    and, when it doesn't say already, the question whether it is the same problem (see
    ``Troubleshooter._welcome_back``), so the session start itself sends nothing."""

    def name(self) -> Text:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        carried = {
            k: v
            for k, v in tracker.slots.items()
            if v is not None and k not in ("requested_slot", "session_started_metadata", "recent_replies")
        }
        if (
            carried.get("diagnosis")
            and not carried.get("resolved")
            and carried.get("handoff_status") not in ("waiting", "assigned")
        ):
            carried["returning"] = True
        events.extend(SlotSet(k, v) for k, v in carried.items())
        events.append(ActionExecuted("action_listen"))
        return events


#: Where unknown bank names are counted for the team (bot/handoff/unknown_banks.py), in the database of
#: ``services``; tests can pass their own registry. It must have ``record(name) -> None`` (blocking).
def default_unknown_banks(services: ActionServices) -> Any:
    from bot.handoff.unknown_banks import UnknownBanks  # an import failure is logged: see record_unknown_bank

    return UnknownBanks(services.database)


async def record_unknown_bank(services: ActionServices, name: str, registry: Optional[Any] = None) -> None:
    """Counts a bank name the directory lacks, so the team can add it. The conversation never waits
    on it failing: a missing module or table, or a storage error, is logged and the form goes on."""
    try:
        registry = registry if registry is not None else default_unknown_banks(services)
        await asyncio.to_thread(registry.record, name)
    except Exception:
        logger.warning("Could not record the unknown bank name for the directory team.", exc_info=True)


class ValidateBankForm(UsesServices, FormValidationAction):
    """Reads the answer to "which bank?": a directory bank, a web address, a skip, a bank the
    directory doesn't know (taken as given, counted for the team), or no answer at all, which ends
    the form so the troubleshooter handles the message as what it is (bot/troubleshooting/bank_question.py)."""

    def __init__(self, services: Optional[ActionServices] = None, unknown_banks: Optional[Any] = None) -> None:
        super().__init__(services)
        self.unknown_banks = unknown_banks

    def name(self) -> Text:
        return "validate_bank_form"

    async def validate_bank_site(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        message = tracker.latest_message or {}
        question = tracker.get_slot("question") or {}
        if isinstance(question, dict) and question.get("after") and question["after"] == message.get("message_id"):
            # the form asks again in the turn of a message the troubleshooter already handled: not an answer
            return {"bank_site": None}
        intent = message.get("intent") or {}
        entities = {}
        for e in message.get("entities") or []:
            entities.setdefault(e.get("entity"), e.get("value"))
        text = message.get("text") if isinstance(message.get("text"), str) else str(value or "")
        directory = self.services.directory
        answer = bq.classify(text, _effective_intent(tracker), float(intent.get("confidence") or 0), entities, directory)
        if answer.kind == bq.BANK:
            return {"bank_site": answer.bank, "bank": answer.bank}
        if answer.kind == bq.URL:
            return {"bank_site": answer.url, "bank_url": answer.url, **({"bank": answer.bank} if answer.bank else {})}
        if answer.kind == bq.SKIP:
            return {"bank_site": SKIP_BANK}
        if answer.kind == bq.UNLISTED:
            if answer.name is None:
                return {"bank_site": SKIP_BANK}  # "a credit union": nothing to check or count, go on
            await record_unknown_bank(self.services, answer.name, self.unknown_banks)
            return {"bank_site": answer.name, "bank": answer.name}
        if answer.kind == bq.SECRET:
            # never quote it back: say what was removed and why; the form then asks for the bank again
            question = tracker.get_slot("question") or {}
            count = question.get("count", 0) + 1 if isinstance(question, dict) else 1
            dispatcher.utter_message(response="utter_sensitive_warning", removed=describe(sensitive_kinds(text)) or "a secret")
            return {"bank_site": None, "question": {"key": BANK_QUESTION, "count": count}}
        return {"bank_site": NOT_A_BANK}  # the troubleshooter answers it, then asks for the bank again


class ActionAskBankSite(Action):
    """The bank form's question, worded after how often it was asked already (never the same three
    times in a row; from the second re-ask on with buttons to skip the check or talk to a person)."""

    def name(self) -> Text:
        return "action_ask_bank_site"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        question = tracker.get_slot("question") or {}
        count = question.get("count", 0) if isinstance(question, dict) and question.get("key") == BANK_QUESTION else 0
        dispatcher.utter_message(response=bq.ask_response(count))
        return []
