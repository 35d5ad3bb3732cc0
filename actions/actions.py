"""Rasa SDK actions. Thin by design: they read the tracker and call plain modules in ``actions/``."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, FollowupAction, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation, handoff
from actions import troubleshooting as ts
from actions.bank_directory import BankDirectory
from actions.conversation import SKIP_BANK, State, Troubleshooter, Turn, topic_key, topic_title
from actions.settings import probe_settings
from actions.outage_desk import OutageDesk, record_probe
from actions.site_prober import ProbeResult, SiteProber
from bot.redaction import describe, sensitive_kinds
from bot.sessions import channel_of

logger = logging.getLogger(__name__)

FALLBACK_THRESHOLD = 0.5  # same as the FallbackClassifier in config.yml
# Said instead of a bank name, these end the bank form; a bank name is never taken for them.
FORM_EXIT_INTENTS = {"fixed_it", "ask_human", "stop"}
FORM_EXIT_CONFIDENCE = 0.8
SKIP_WORDS = {"skip", "dont know", "don't know", "no idea", "not sure", "pass", "none", "n/a", "idk"}

_prober: Optional[SiteProber] = None


def site_prober() -> SiteProber:
    """One prober per action-server process, so its cache and in-flight coalescing are shared."""
    global _prober
    if _prober is None:
        _prober = SiteProber(probe_settings())
    return _prober


async def checked_site(key: str, url: str) -> ProbeResult:
    """Probes a bank's site; fresh results also feed the outage radar."""
    result = await site_prober().check(key, url)
    if not result.from_cache and result.status != "unknown":
        await record_probe(key, result.status)
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


class ActionTroubleshoot(Action):
    """Every user turn about the problem: diagnose, run checks, present the next fix."""

    def name(self) -> Text:
        return "action_troubleshoot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        desk = OutageDesk(tracker.sender_id, conversation_channel(tracker),
                          metadata.get("client_key") if isinstance(metadata, dict) else None)
        troubleshooter = Troubleshooter(BankDirectory.default(), checked_site, outages=desk)
        reply = await troubleshooter.handle(State.from_slots(tracker.slots), turn_from_tracker(tracker))
        dispatch(dispatcher, reply.messages)
        if reply.slots.get("resolved") is True:
            await handoff.record_resolution(tracker.sender_id, tracker.slots.get("handoff_status"))
        return [SlotSet(slot, value) for slot, value in reply.slots.items()] + listen_next(tracker, reply.slots)


def listen_next(tracker: Tracker, slots: Dict[Text, Any]) -> List[EventType]:
    """``FollowupAction("action_listen")`` when the rules would predict listening anyway: no bank form
    or escalation asked for (the two flag slots) and no form running (a form interrupted by a question
    is resumed by the RulePolicy, so it must predict). Rasa then skips the policy run after this action:
    measured, the second prediction per message was ~15 % of the server's CPU."""
    if slots.get("needs_bank") or slots.get("escalation_due") or (tracker.active_loop or {}).get("name"):
        return []
    return [FollowupAction("action_listen")]


class ActionEscalate(Action):
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
    """Starts a session, carrying the slots over and welcoming a returning user back where they were."""

    def name(self) -> Text:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        carried = {k: v for k, v in tracker.slots.items() if v is not None and k not in ("requested_slot", "session_started_metadata")}
        events.extend(SlotSet(k, v) for k, v in carried.items())
        current = carried.get("current_step")
        if current and not carried.get("resolved"):
            dispatcher.utter_message(
                response="utter_welcome_back",
                topic=topic_title(topic_key(carried.get("diagnosis"), carried.get("bank"))),
                last_step=ts.STEP_TITLES.get(current, current),
            )
        events.append(ActionExecuted("action_listen"))
        return events


class ValidateBankForm(FormValidationAction):
    """Turns what the user typed into a directory bank, a web address, or an explicit skip."""

    def name(self) -> Text:
        return "validate_bank_form"

    async def validate_bank_site(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        intent = (tracker.latest_message or {}).get("intent") or {}
        if intent.get("name") in FORM_EXIT_INTENTS and (intent.get("confidence") or 0) >= FORM_EXIT_CONFIDENCE:
            return {"bank_site": SKIP_BANK}  # the troubleshooter handles what the user said instead
        text = str(value or "").strip()
        directory = BankDirectory.default()
        entities = {e.get("entity"): e.get("value") for e in (tracker.latest_message or {}).get("entities") or []}
        bank = directory.get(entities.get("bank") or text)
        if bank:
            return {"bank_site": bank.name, "bank": bank.name}
        url = entities.get("bank_url")
        if url:
            known = directory.from_url(url)
            return {"bank_site": url, "bank_url": url, **({"bank": known.name} if known else {})}
        if text.lower().strip(" .!") in SKIP_WORDS:
            return {"bank_site": SKIP_BANK}
        kinds = sensitive_kinds(text)
        if kinds:
            # never quote it back: say what was removed and why; the form then asks for the bank again
            dispatcher.utter_message(response="utter_sensitive_warning", removed=describe(kinds))
        else:
            dispatcher.utter_message(response="utter_bank_not_in_directory", given=text[:80])
        return {"bank_site": None}
