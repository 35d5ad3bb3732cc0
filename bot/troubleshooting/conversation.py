"""The troubleshooting conversation as plain Python: one user turn in, replies and slot changes out.

``Troubleshooter.handle`` holds every decision of the dialogue (diagnose, pick the next fix, run the
bank-site check, the credential check, topic changes, relapses, escalation). The Rasa action in
``actions/actions.py`` only turns the tracker into a ``State`` and a ``Turn`` and the ``Reply`` back
into messages and ``SlotSet`` events, so the whole flow is testable without Rasa.

The dialogue design, in four rules:

* **One question per turn.** A reply asks at most one question (``Reply.ask``), and the ``question``
  slot remembers which one is pending (``{"key": <the response that asked it>, "count": n}``).
  Answers are read against that question ("yes" to "notify me?" is not "yes, it's fixed").
* **Re-ask in other words, then offer a way out.** A message that does not answer the pending
  question is handled as what it is (a browser name is noted, a question is answered, a new error
  code is a new report); the question is then asked again, the first time in other words
  (``REASK``), the second time with the offer to skip the step or talk to a person, alternating
  after that. ``count`` is the number of re-asks.
* **Never the same reply three times in a row.** ``recent_replies`` keeps a fingerprint of the
  last two replies; a third identical one is replaced by ``utter_going_in_circles``.
* **An honest record.** ``steps_tried`` is only the bot's progress through the plan; each step's
  ``step_outcomes`` entry says whether it was walked through, already tried by the customer, or
  skipped and why (``troubleshooting.record``). Summaries, tickets and the console read that.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Tuple

from bot.banks.directory import BankDirectory
from bot.banks.site_prober import ProbeResult
from bot.redaction import describe, only_secrets, without_userinfo
from bot.troubleshooting import browsers
from bot.troubleshooting import credential_check as cc
from bot.troubleshooting import diagnosis as dx
from bot.troubleshooting import steps as ts

SKIP_BANK = "skip"
#: ``bank_site`` when the customer answered the bank question with something else (a question, a
#: button of an earlier message, another request): the troubleshooter handles the message as what it
#: is, then asks for the bank again.
NOT_A_BANK = "not_an_answer"
BANK_QUESTION = "utter_ask_bank_site"
HANDOFF_OPEN = ("requested", "waiting", "assigned")

# Intents that answer "did it work?" and the like; everything else is a new message about the problem.
CHITCHAT_RESPONSES = {
    "goodbye": "utter_goodbye",
    "thank": "utter_you_are_welcome",
    "bot_challenge": "utter_iamabot",
    "ask_capabilities": "utter_capabilities",
}

# Intents that a known QuickBooks error code in the same message turns into a problem report.
CODE_OVERRIDABLE_INTENTS = {
    "inform",
    "nlu_fallback",
    "greet",
    "thank",
    "goodbye",
    "bot_challenge",
    "ask_capabilities",
    "dont_know",
    "explain_step",
    "relapse",
}

#: How long "wait a day" must have lasted before "still failing" means it did not help (the nightly
#: update has run by then); sooner, the customer is offered a reminder or a person instead.
WAIT_ENOUGH_SECONDS = 18 * 3600

#: Words that say a message is about another bank than the one in the conversation ("my other bank").
OTHER_BANK = re.compile(r"\b(other|another|second|different|2nd)\s+(bank|card|account|one)\b", re.I)

SiteCheck = Callable[[str, str], Awaitable[ProbeResult]]

#: What the customer reads when the address they gave is one the bot may not contact (the outbound policy
#: refused it: not a public web address, an unusual port or scheme). It says nothing about the target.
CANNOT_CHECK_ADDRESS = (
    "I can't check that address, so I haven't tested it. I can only check a bank's public "
    "website, such as the page where you sign in to online banking."
)

#: The question asked again in other words (short numbered steps), by the key of the question.
REASK: Dict[str, str] = {
    "utter_ask_bank_login": "utter_reask_site_check",
    "utter_bank_site_problem": "utter_reask_fixed_yet",
    "utter_step_refresh": "utter_reask_refresh",
    **{cc.QUESTION_RESPONSES[q]: f"utter_reask_cred_{q}" for q in cc.QUESTIONS},
    "utter_cred_edit_sign_in": "utter_reask_edit_sign_in",
    "utter_ask_browser": "utter_reask_browser",
    **{browsers.cache_response(b): "utter_reask_clear_cache" for b in browsers.SUPPORTED + ("other",)},
    "utter_step_private_window": "utter_reask_private_window",
    "utter_ask_manual_upload_result": "utter_reask_manual_upload",
    "utter_step_wait_a_day": "utter_reask_wait_a_day",
    "utter_wait_too_soon": "utter_reask_wait_a_day",
    "utter_step_answer_security_check": "utter_reask_answer_security_check",
    "utter_step_fix_account_mapping": "utter_reask_fix_account_mapping",
    "utter_step_renew_consent": "utter_reask_renew_consent",
    "utter_offer_outage_notice": "utter_reask_outage_notice",
    "utter_offer_human": "utter_reask_offer_human",
    "utter_welcome_back": "utter_reask_welcome_back",
    "utter_clarify": "utter_clarify_again",
    "utter_clarify_topic": "utter_clarify_again",
    "utter_ask_what_now": "utter_clarify_again",
}
#: Credential questions whose "No" button reads "No / not sure": "I don't know" answers them.
NOT_SURE_MEANS_NO = {cc.SAME_USER_ID, cc.THIRD_PARTY_ACCESS}
#: Questions that are not "did it work?": "I don't know" to them is answered by asking again in other words.
NOT_STEP_QUESTIONS = {
    "utter_offer_outage_notice",
    "utter_offer_human",
    "utter_welcome_back",
    "utter_ask_browser",
    "utter_clarify",
    "utter_clarify_topic",
    "utter_ask_what_now",
    "utter_wait_too_soon",
    BANK_QUESTION,
}
#: "Skip" and "check back tomorrow" typed at a step (their buttons send /skip_step and /remind_me; the
#: classifier has no examples of them, which keeps its out-of-scope recall).
TYPED_SKIP = re.compile(
    r"^\s*(please\s+)?(skip|skip (it|this|that)( one| step)?|next( one| fix| step)?( please)?|"
    r"move on|pass|skip to the next (fix|step))\s*[.!]*\s*$",
    re.I,
)
TYPED_REMIND = re.compile(
    r"\b(remind|check (back|in|on)|follow up|message|ping|get back to)\b.*\b(tomorrow|later|in a day)\b", re.I
)

#: The questions about what the problem is (no step yet): asked again with other options, then a person.
CLARIFY_QUESTIONS = ("utter_clarify", "utter_clarify_topic", "utter_ask_what_now")
#: After this many re-asks of "which bank?", the bot goes on without the automatic site check.
MAX_BANK_ASKS = 4


@dataclass
class State:
    """What the conversation already knows: the tracker's slots."""

    diagnosis: Optional[str] = None
    error_code: Optional[str] = None
    bank: Optional[str] = None
    bank_url: Optional[str] = None
    browser: Optional[str] = None
    bank_site: Optional[str] = None
    steps_tried: List[str] = field(default_factory=list)
    step_outcomes: Dict[str, str] = field(default_factory=dict)
    current_step: Optional[str] = None
    credential_answers: Dict[str, bool] = field(default_factory=dict)
    check_results: Dict[str, Any] = field(default_factory=dict)
    topics: Dict[str, Any] = field(default_factory=dict)
    human_offered: bool = False
    resolved: bool = False
    needs_bank: bool = False
    escalation_due: bool = False
    escalation_reason: Optional[str] = None
    handoff_status: Optional[str] = None
    question: Dict[str, Any] = field(default_factory=dict)
    recent_replies: List[str] = field(default_factory=list)
    wait_day: Dict[str, Any] = field(default_factory=dict)
    reminder_status: Optional[str] = None
    returning: bool = False

    @classmethod
    def from_slots(cls, slots: Dict[str, Any]) -> "State":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in slots.items() if k in known and v is not None}
        return cls(**values)


#: Channels whose every client can send the bot a file (their file-share flow: bot/server/channels/file_share.py).
FILE_CHANNELS = frozenset({"slack", "botframework"})


def takes_files(channel: Optional[str], metadata: Any) -> bool:
    """Whether the customer's chat client can send us a file: Slack and Teams always; a web client
    only when it says so (``metadata.capabilities`` lists ``file_upload``, as our widget does)."""
    if channel in FILE_CHANNELS:
        return True
    capabilities = metadata.get("capabilities") if isinstance(metadata, dict) else None
    return isinstance(capabilities, str) and "file_upload" in {c.strip() for c in capabilities.split(",")}


@dataclass
class Turn:
    """The user's latest message as NLU understood it."""

    intent: Optional[str]
    entities: Dict[str, List[str]] = field(default_factory=dict)
    sensitive: bool = False
    user_agent: Optional[str] = None
    # what the user typed (None for turns built in code) and the classifier's ranking (likeliest first):
    # the bank-problem gate and the clarifying question read them
    text: Optional[str] = None
    ranking: List[Tuple[str, float]] = field(default_factory=list)
    message_id: Optional[str] = None  # Rasa's id of the message (the bank form must not read it twice)
    # the customer's chat client can send us a file (the widget's paperclip, Slack, Teams): only then is
    # "attach the bank file here" offered; other clients (REST, third-party widgets) get QuickBooks' own way
    takes_files: bool = False

    @property
    def sensitive_kinds(self) -> List[str]:
        """What the user pasted that was masked (``sensitive_data`` entity values: password, card_number ...)."""
        return list(dict.fromkeys(self.entities.get("sensitive_data") or []))

    def first(self, entity: str) -> Optional[str]:
        values = self.entities.get(entity) or []
        return values[0] if values else None


@dataclass
class Reply:
    messages: List[Dict[str, Any]] = field(default_factory=list)
    slots: Dict[str, Any] = field(default_factory=dict)
    #: the key of the question this reply asks (at most one), and whether it is asked again
    question: Optional[str] = None
    reasked: bool = False

    def say(self, response: str, **variables: Any) -> None:
        self.messages.append({"response": response, **variables})

    def ask(self, response: str, **variables: Any) -> None:
        """Says ``response`` as this turn's one question (its key is the response's name)."""
        self.say(response, **variables)
        self.question = response

    def say_text(self, text: str) -> None:
        """A message worded in code, not a domain response."""
        self.messages.append({"text": text})

    def fingerprint(self) -> str:
        """Identifies what the customer reads, to notice the same reply coming again."""
        return hashlib.sha256(json.dumps(self.messages, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Outages(Protocol):
    """What the conversation needs of the outage radar (see bot/outages/desk.py)."""

    async def current(self, bank: str) -> Optional[Dict[str, Any]]: ...

    async def record_report(self, bank: str, diagnosis: str) -> None: ...

    async def subscribe(self, bank: str, probe_url: str) -> bool: ...


class Reminders(Protocol):
    """What the conversation needs to check back with the customer later (see bot/outages/reminder_desk.py)."""

    async def schedule(self, topic: str) -> bool: ...


# Steps that cannot help while the bank itself is down.
USELESS_DURING_OUTAGE = (ts.SITE_CHECK, ts.REFRESH, ts.CREDENTIAL_CHECK, ts.CLEAR_CACHE, ts.PRIVATE_WINDOW)
OUTAGE_DIAGNOSES = (dx.BANK_UNAVAILABLE, dx.CONNECTION_FAILURE)


class Troubleshooter:
    def __init__(
        self,
        directory: BankDirectory,
        check_site: SiteCheck,
        clock: Callable[[], float] = time.time,
        outages: Optional[Outages] = None,
        reminders: Optional[Reminders] = None,
    ):
        self.directory = directory
        self.check_site = check_site
        self.clock = clock
        self.outages = outages
        self.reminders = reminders

    # ------------------------------------------------------------------ entry point
    async def handle(self, state: State, turn: Turn) -> Reply:
        # The rules that run bank_form / action_escalate after this action read the two flags
        # needs_bank and escalation_due (data/rules.yml). Both start false (domain initial_value)
        # and are only written when they change: writing them every turn made every tracker ~20 %
        # longer, and Rasa loads, replays and featurizes the whole tracker on every message.
        reply = await self._handle(state, turn)
        self._remember_question()
        self._no_third_repeat()
        return reply

    async def _handle(self, state: State, turn: Turn) -> Reply:
        reply = Reply()
        self._state, self._reply, self._turn = state, reply, turn
        self._old_bank_url: Optional[str] = None
        self._other_bank = False  # this message is about another bank than the conversation's
        if turn.sensitive:
            reply.say("utter_sensitive_warning", removed=describe(turn.sensitive_kinds))
            if only_secrets(turn.text or ""):
                turn.intent = "nlu_fallback"  # nothing but the secret: no answer to any question, so ask again
        intent = turn.intent
        if state.browser is None and turn.user_agent:
            ua_browser = browsers.browser_from_user_agent(turn.user_agent)
            if ua_browser:
                self._set("browser", ua_browser)

        if state.handoff_status in HANDOFF_OPEN and intent not in ("fixed_it", "stop"):
            reply.say("utter_already_escalated")
            return reply

        if state.needs_bank:
            # the bank form just finished: run the site check unless the customer said something else
            self._set("needs_bank", False)
            if state.bank_site == NOT_A_BANK:
                self._set("bank_site", None)
                await self._dispatch(turn)
                self._ask_bank_again_if_needed()
                return reply
            if intent not in ("fixed_it", "ask_human", "stop"):
                await self._present(ts.SITE_CHECK)
                return reply

        if state.returning:
            self._set("returning", False)
            if await self._welcome_back(turn):
                return reply
        await self._dispatch(turn)
        return reply

    async def _dispatch(self, turn: Turn) -> None:
        intent = self._typed_shortcut(turn)
        codes = turn.entities.get("error_code", [])
        if intent in CODE_OVERRIDABLE_INTENTS and any(c in dx.CODE_DIAGNOSIS for c in codes):
            # "error 105 td canada trust" read as a mere detail: a QuickBooks code makes it a report
            await self._on_problem_report(turn)
            return
        if turn.first("bank_url") and self._awaits_sign_in_address(intent):
            await self._on_sign_in_address(turn)
            return
        if self._answer_adjacent_or_unsure(turn):
            return
        handler = getattr(self, f"_on_{intent}", None) if intent else None
        if handler is not None:
            await handler(turn)
        elif intent in CHITCHAT_RESPONSES:
            self._diagnose(turn)
            self._reply.say(CHITCHAT_RESPONSES[intent])
        else:
            await self._on_problem_report(turn)

    def _typed_shortcut(self, turn: Turn) -> Optional[str]:
        """The intent to act on: "skip" typed at a step is ``skip_step``, "check back tomorrow" typed at
        the wait-a-day question is ``remind_me`` (whatever the classifier said); else the turn's own."""
        text = turn.text or ""
        if turn.intent not in ("ask_human", "fixed_it", "stop") and not text.startswith("/"):
            if self._state.current_step and TYPED_SKIP.match(text):
                turn.intent = "skip_step"
            elif self._state.current_step == ts.WAIT_A_DAY and TYPED_REMIND.search(text):
                turn.intent = "remind_me"
        return turn.intent

    # ------------------------------------------------------------------ the dialogue's bookkeeping
    def _remember_question(self) -> None:
        """The ``question`` slot follows what this reply asked; a reply asking nothing leaves the
        pending question as it was (e.g. a "thanks" in between), unless the conversation moved on."""
        reply, state = self._reply, self._state
        if reply.reasked:
            return
        if reply.question:
            new = {"key": reply.question, "count": 0}
        elif state.needs_bank:  # the bank form asks next
            new = {
                "key": BANK_QUESTION,
                "count": state.question.get("count", 0) if state.question.get("key") == BANK_QUESTION else 0,
                **self._answered_message(),
            }
        elif state.escalation_due or state.resolved:
            new = {}
        else:
            return
        if new != state.question:
            self._set("question", new)

    def _no_third_repeat(self) -> None:
        """Replaces a reply identical to the two before it: the customer is stuck, and saying the same
        thing a third time would not help. Every reply of this action goes through here."""
        reply, state = self._reply, self._state
        if not reply.messages:
            return
        fingerprint = reply.fingerprint()
        recent = list(state.recent_replies)[-2:]
        if len(recent) == 2 and recent[0] == recent[1] == fingerprint:
            reply.messages = [m for m in reply.messages if m.get("response") == "utter_sensitive_warning"]
            reply.ask("utter_going_in_circles")
            fingerprint = reply.fingerprint()
        recent = (recent + [fingerprint])[-2:]
        if recent != state.recent_replies:
            self._set("recent_replies", recent)

    def _question_key(self) -> Optional[str]:
        """The pending question: what the last question was, else the pending step's own question."""
        key = self._state.question.get("key")
        if key:
            return key
        step = self._state.current_step
        if step == ts.SITE_CHECK:
            return "utter_ask_bank_login"
        if step == ts.CREDENTIAL_CHECK:
            q = cc.next_question(self._state.credential_answers)
            return (
                cc.QUESTION_RESPONSES[q]
                if q and not self._state.credential_answers.get(cc.ADVICE_GIVEN)
                else "utter_cred_edit_sign_in"
            )
        if step == ts.CLEAR_CACHE:
            return browsers.cache_response(self._state.browser) if self._state.browser else "utter_ask_browser"
        if step == ts.MANUAL_UPLOAD:
            return "utter_ask_manual_upload_result"
        if step:
            return f"utter_step_{step}"
        return None

    def _reask(self, first: Optional[str] = None) -> None:
        """The pending question again: the first time in other words (or as ``first``), the second time
        with the offer to skip the step or talk to a person, then alternating with a shorter wording,
        so no reply repeats three times in a row."""
        key = self._question_key()
        if key is None:
            self._clarify()
            return
        count = (self._state.question.get("count", 0) if self._state.question.get("key") == key else 0) + 1
        self._set("question", {"key": key, "count": count, **(self._answered_message() if key == BANK_QUESTION else {})})
        self._reply.reasked, self._reply.question = True, key
        if key == BANK_QUESTION:
            if count > MAX_BANK_ASKS:
                # no bank after all that: go on without the automatic check (the customer looks themselves)
                self._set("bank_site", SKIP_BANK)
                self._reply.reasked = False
                self._reply.say("utter_site_skipped")
                self._reply.ask("utter_ask_bank_login", bank_login="your bank's own website")
                return
            self._set("needs_bank", True)  # the bank form asks again, worded after ``count``
            return
        step_title = ts.STEP_TITLES.get(self._state.current_step or "", "this step")
        if count == 1 or (first and count == 2):  # an understood "I don't know" gets its answer first
            self._reply.say(
                first or REASK.get(key, "utter_reask_fixed_yet"),
                bank_login=self._bank_login_url() or "your bank's own website",
                bank_name=self._state.bank or "your bank",
            )
        elif key in CLARIFY_QUESTIONS:
            self._reply.say("utter_clarify_person" if count % 2 == 0 else "utter_clarify_again")
        elif count % 2 == 0:
            self._reply.say("utter_offer_skip_or_person", step_title=step_title)
        else:
            self._reply.say("utter_still_unclear", step_title=step_title)

    def _answered_message(self) -> Dict[str, str]:
        """``{"after": <this message's id>}``: the bank form, activated again in this same turn, must not
        take this message (already handled) as the answer to its question."""
        return {"after": self._turn.message_id} if self._turn.message_id else {}

    def _ask_bank_again_if_needed(self) -> None:
        """After a message that was not the bank asked for: ask for it again if nothing else was asked
        (one question per turn) and the site check still waits for it."""
        s = self._state
        if (
            s.current_step == ts.SITE_CHECK
            and self._bank_login_url() is None
            and not s.bank_site
            and not self._reply.question
            and not s.escalation_due
            and not s.resolved
            and not s.needs_bank
        ):
            self._reask()

    # ------------------------------------------------------------------ helpers
    def _set(self, slot: str, value: Any) -> None:
        setattr(self._state, slot, value)
        self._reply.slots[slot] = value

    def _diagnose(self, turn: Turn) -> Optional[str]:
        new = dx.diagnose(turn.intent, turn.entities.get("error_code", []), self._state.diagnosis)
        if new != self._state.diagnosis:
            self._set("diagnosis", new)
        return new

    def _bank_name(self) -> str:
        return self._state.bank or (self._host(self._state.bank_url) if self._state.bank_url else "your bank")

    @staticmethod
    def _host(url: Optional[str]) -> str:
        from urllib.parse import urlsplit

        if not url:
            return ""
        parsed = urlsplit(url if "://" in url else f"https://{url}")
        return (parsed.hostname or url).lower()

    def _listed_bank(self) -> bool:
        return bool(self._state.bank) and self.directory.get(self._state.bank) is not None

    def _bank_login_url(self) -> Optional[str]:
        if self._state.bank:
            bank = self.directory.get(self._state.bank)
            if bank:
                return bank.online_banking_url
        if self._state.bank_url:
            url = without_userinfo(self._state.bank_url)  # never quote (or probe with) sign-in details
            return url if "://" in url else f"https://{url}"
        return None

    def _topic_key(self, diagnosis: Optional[str] = None) -> str:
        return topic_key(diagnosis or self._state.diagnosis, self._state.bank)

    def _record(self) -> ts.Record:
        return ts.record(self._state.steps_tried, self._state.step_outcomes)

    # ------------------------------------------------------------------ problem reports
    async def _on_problem_report(self, turn: Turn) -> None:
        state = self._state
        previous = state.diagnosis
        previous_key = state.topics.get("current")
        diagnosis = self._diagnose(turn)
        codes = turn.entities.get("error_code", [])

        if diagnosis is None:
            self._clarify()
            return
        if diagnosis == dx.OUT_OF_SCOPE:
            if previous not in (None, dx.OUT_OF_SCOPE):
                self._set("diagnosis", previous)  # keep the real problem; just answer this one
            desktop = next((c for c in codes if dx.is_desktop_code(c)), None)
            if desktop:
                self._reply.say("utter_desktop_code", error_code=desktop)
            elif turn.intent == "greet":
                self._reply.say("utter_greet")
            else:
                self._reply.say("utter_out_of_scope")
            return
        if turn.first("error_code") and turn.first("error_code") != state.error_code:
            self._set("error_code", turn.first("error_code"))

        bank_named = turn.first("bank") is not None
        if (
            previous_key
            and previous not in (None, dx.OUT_OF_SCOPE)
            and state.bank
            and not bank_named
            and OTHER_BANK.search(turn.text or "")
        ):
            # "also my other bank shows 103": a new topic, and not with the bank of the old one
            self._other_bank = True
            self._old_bank_url = state.bank_url
            self._set("bank", None)
            self._set("bank_url", None)
        new_key = self._topic_key(diagnosis)
        if previous_key and previous_key != new_key and not self._same_topic_with_bank_added(previous_key, new_key):
            await self._switch_topic(previous_key, new_key, bank_named=bank_named)
            return
        self._set_current_topic(new_key)

        if state.resolved:
            await self._relapse()  # the same problem again after "it's fixed": carry on, don't start over
            return
        if state.bank and self._listed_bank() and self.outages is not None:
            await self.outages.record_report(state.bank, diagnosis)
            if await self._known_outage():
                return
        if state.current_step and previous == diagnosis:
            if (
                state.current_step == ts.SITE_CHECK
                and (turn.first("bank") or turn.first("bank_url"))
                and not self._site_checked()
            ):
                await self._present(ts.SITE_CHECK)
                return
            # the same problem reported again while a fix is pending: that fix didn't help
            await self._step_failed(ts.OUTCOME_FAILED)
            return
        if previous == diagnosis and state.steps_tried:
            await self._present_next()  # the same problem, between steps: go on, don't introduce it again
            return
        self._introduce(diagnosis)
        await self._present_next()

    def _same_topic_with_bank_added(self, old_key: str, new_key: str) -> bool:
        old_diag, _, old_bank = old_key.partition("|")
        new_diag, _, new_bank = new_key.partition("|")
        return old_diag == new_diag and not old_bank and bool(new_bank)

    def _set_current_topic(self, key: str) -> None:
        topics = {**self._state.topics, "current": key, "current_code": self._state.error_code}
        if topics != self._state.topics:
            self._set("topics", topics)

    def _introduce(self, diagnosis: str) -> None:
        code = self._state.error_code
        self._reply.say(
            f"utter_diagnosis_{diagnosis}",
            bank_name_or_your_bank=self._bank_name(),
            error_code_or_102=code if code in ("102", "105") else "102",
            error_code_or_185=code or "185",
            with_code=f" (Error {code})" if code and not dx.is_desktop_code(code) else "",
        )

    PROGRESS_SLOTS = {
        "steps_tried": list,
        "step_outcomes": dict,
        "current_step": lambda: None,
        "credential_answers": dict,
        "resolved": bool,
        "wait_day": dict,
        "reminder_status": lambda: None,
        "human_offered": bool,
    }

    def _progress(self) -> Dict[str, Any]:
        s = self._state
        progress = {"diagnosis": s.diagnosis, "bank": s.bank, "error_code": s.error_code}
        for slot in self.PROGRESS_SLOTS:
            value = getattr(s, slot)
            progress[slot] = list(value) if isinstance(value, list) else (dict(value) if isinstance(value, dict) else value)
        return progress

    async def _switch_topic(self, old_key: str, new_key: str, bank_named: bool) -> None:
        saved = dict(self._state.topics.get("saved", {}))
        # slot mappings already put this message's bank/code in the slots: the old topic keeps its own
        saved[old_key] = {
            **self._progress(),
            "diagnosis": old_key.partition("|")[0],
            "bank": old_key.partition("|")[2] or None,
            "bank_url": self._old_bank_url if self._old_bank_url is not None else self._state.bank_url,
            "error_code": self._state.topics.get("current_code"),
        }
        resume = saved.pop(new_key, None)
        if resume is None and not bank_named and not self._other_bank:
            # "back to the 102": the user named the problem but not the bank; find it among saved topics
            diagnosis = new_key.partition("|")[0]
            match = next((k for k in reversed(list(saved)) if k.partition("|")[0] == diagnosis), None)
            if match:
                new_key, resume = match, saved.pop(match)
        self._set("topics", {"current": new_key, "current_code": self._state.error_code, "saved": saved})
        if resume:
            for slot in ("diagnosis", "bank", "error_code", "bank_url"):
                if resume.get(slot) != getattr(self._state, slot):
                    self._set(slot, resume.get(slot))
            for slot, empty in self.PROGRESS_SLOTS.items():
                value = resume.get(slot)
                self._set(slot, value if value is not None else empty())
            self._set("question", {})
            record = self._record()
            self._reply.say("utter_topic_resumed", topic=topic_title(new_key), steps_done=record.sentence())
            if self._state.resolved:
                self._reply.say("utter_topic_was_fixed")
                return
            await self._present(self._state.current_step or ts.next_step(self._state.diagnosis, self._state.steps_tried))
            return
        self._clear_progress()
        self._reply.say("utter_topic_switched", topic=topic_title(new_key), previous_topic=topic_title(old_key))
        self._introduce(self._state.diagnosis)
        await self._present_next()

    def _clear_progress(self) -> None:
        for slot, empty in self.PROGRESS_SLOTS.items():
            if getattr(self._state, slot) != empty():
                self._set(slot, empty())
        if self._state.question:
            self._set("question", {})

    # ------------------------------------------------------------------ relapses and returns
    async def _relapse(self) -> None:
        """ "It broke again" after "it's fixed": the fix that seemed to work is marked as not holding,
        and the conversation goes on with the remaining steps (or a specialist when none are left)."""
        state = self._state
        outcomes = dict(state.step_outcomes)
        for step, outcome in outcomes.items():
            if outcome == ts.OUTCOME_FIXED:
                outcomes[step] = ts.OUTCOME_RELAPSED
        self._set("step_outcomes", outcomes)
        self._set("resolved", False)
        self._set("human_offered", False)
        remaining = ts.remaining_steps(state.diagnosis, state.steps_tried)
        self._reply.say("utter_relapse", topic=topic_title(self._topic_key()), steps_done=self._record().sentence())
        if not remaining:
            self._reply.say("utter_escalating")
            self._escalate("relapsed_after_every_step")
            return
        await self._present(remaining[0])

    async def _welcome_back(self, turn: Turn) -> bool:
        """The first message of a returning customer (a new session with the old progress). A greeting
        or an unclear message gets "welcome back, same problem?"; anything else is handled as usual
        after a short welcome. True when the turn is complete."""
        state = self._state
        if state.diagnosis in (None, dx.OUT_OF_SCOPE) or state.resolved:
            return False
        pending = state.current_step or ts.next_step(state.diagnosis, state.steps_tried)
        if pending is None:
            return False
        if (
            turn.intent in ("greet", "nlu_fallback", "thank", "inform")
            and not turn.entities.get("error_code")
            and not turn.first("bank")
        ):
            self._reply.ask(
                "utter_welcome_back", topic=topic_title(self._topic_key()), last_step=ts.STEP_TITLES.get(pending, pending)
            )
            return True
        self._reply.say("utter_welcome_back_short", topic=topic_title(self._topic_key()))
        return False

    # ------------------------------------------------------------------ answers to "did it work?"
    async def _on_deny(self, turn: Turn) -> None:
        key = self._question_key()
        if await self._answer_credential_question(False):
            return
        if key == "utter_welcome_back":
            self._reply.ask("utter_ask_what_now")  # not the same problem: hear what it is
            return
        if key == "utter_offer_outage_notice":
            self._reply.ask("utter_ask_manual_upload_result")  # no notice, thanks: on with the upload
            return
        if key in ("utter_offer_human", BANK_QUESTION) or (key == "utter_wait_too_soon" and not self._waited_long_enough()):
            self._reask()  # "no" doesn't answer "keep going or a person?" / "which bank?" / "check back?"
            return
        if self._state.current_step:
            await self._step_failed(ts.OUTCOME_FAILED)
        elif self._state.resolved and self._state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            await self._relapse()  # "no, it's failing again" after "fixed"
        elif self._state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            await self._present_next()  # e.g. back from a specialist and still failing
        else:
            self._nothing_pending()

    async def _on_affirm(self, turn: Turn) -> None:
        key = self._question_key()
        if await self._answer_credential_question(True):
            return
        if key == "utter_welcome_back":
            await self._on_continue_troubleshooting(turn)
            return
        if key == "utter_offer_outage_notice":
            await self._on_notify_when_back(turn)
            return
        if key in ("utter_offer_human", "utter_wait_too_soon", BANK_QUESTION):
            self._reask()  # "yes" to an either-or question: ask which
            return
        if self._state.current_step:
            await self._on_fixed_it(turn)
        else:
            self._nothing_pending()

    async def _on_already_tried(self, turn: Turn) -> None:
        if self._state.current_step:
            self._reply.say("utter_step_skipped")
            await self._step_failed(ts.OUTCOME_ALREADY_TRIED)
        else:
            self._nothing_pending()

    async def _on_skip_step(self, turn: Turn) -> None:
        key = self._question_key()
        if key == "utter_offer_outage_notice":
            self._reply.ask("utter_ask_manual_upload_result")
            return
        if key == "utter_welcome_back" and self._state.current_step:
            await self._on_continue_troubleshooting(turn)
            return
        step = self._state.current_step
        if not step:
            self._nothing_pending()
            return
        self._reply.say("utter_step_skipped_on_request", step_title=ts.STEP_TITLES.get(step, step))
        await self._step_failed(ts.OUTCOME_SKIPPED_BY_CUSTOMER)

    async def _on_dont_know(self, turn: Turn) -> None:
        state = self._state
        if state.current_step == ts.CREDENTIAL_CHECK and not state.credential_answers.get(cc.ADVICE_GIVEN):
            question = cc.next_question(state.credential_answers)
            if question in NOT_SURE_MEANS_NO:
                await self._answer_credential_question(False)
                return
        if not state.current_step and self._question_key() is None:
            self._nothing_pending()
            return
        key = self._question_key() or ""
        did_it_work = key == "utter_cred_edit_sign_in" or not (key in NOT_STEP_QUESTIONS or key.startswith("utter_cred_"))
        self._reask(first="utter_how_to_tell" if did_it_work else None)

    async def _on_explain_step(self, turn: Turn) -> None:
        if self._question_key() is None:
            self._reply.say("utter_capabilities")
            return
        self._reask()

    async def _on_bank_site_problem(self, turn: Turn) -> None:
        step = self._state.current_step or ts.SITE_CHECK
        self._set("step_outcomes", {**self._state.step_outcomes, step: ts.OUTCOME_BANK_PROBLEM})
        self._set("current_step", step)
        self._reply.ask("utter_bank_site_problem")

    async def _on_fixed_it(self, turn: Turn) -> None:
        state = self._state
        steps = list(state.steps_tried)
        if state.current_step:
            steps = ts.record_step(steps, state.current_step)
            self._set("steps_tried", steps)
            self._set("step_outcomes", {**state.step_outcomes, state.current_step: ts.OUTCOME_FIXED})
        fixed_by = state.current_step
        if state.handoff_status in HANDOFF_OPEN:
            self._set("handoff_status", "closed")
        self._set("current_step", None)
        self._set("resolved", True)
        record = self._record()
        topic = topic_title(self._topic_key())
        if fixed_by:
            summary = f"{topic} was fixed by {ts.STEP_TITLES[fixed_by]}"
            earlier = ts.Record([s for s in record.walked if s != fixed_by], record.already_tried, record.skipped)
            if earlier.walked or earlier.already_tried or earlier.skipped:
                summary += f". Before that, {earlier.sentence()}"
        else:
            summary = f"{topic} is working again"
            if steps:
                summary += f". Along the way, {record.sentence()}"
        self._reply.say("utter_resolved", summary=summary + ".")
        self._reply.say("utter_prevention_tips")

    async def _on_relapse(self, turn: Turn) -> None:
        state = self._state
        if state.resolved and state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            self._set_current_topic(self._topic_key())
            await self._relapse()
        elif state.current_step:
            await self._on_deny(turn)
        else:
            await self._on_problem_report(turn)

    async def _on_continue_troubleshooting(self, turn: Turn) -> None:
        if self._state.diagnosis in (None, dx.OUT_OF_SCOPE):
            self._nothing_pending()
            return
        if self._state.resolved:
            self._nothing_pending()
            return
        self._set("question", {})  # the step's own question is asked afresh
        await self._present(self._state.current_step or ts.next_step(self._state.diagnosis, self._state.steps_tried))

    async def _on_stop(self, turn: Turn) -> None:
        if self._state.handoff_status in HANDOFF_OPEN:
            self._set("handoff_status", "closed")
        self._set("current_step", None)
        self._set("question", {})
        self._reply.say("utter_stopped")

    async def _on_greet(self, turn: Turn) -> None:
        self._diagnose(turn)
        if self._state.current_step and not self._state.resolved:
            self._reply.ask(
                "utter_welcome_back",
                topic=topic_title(self._topic_key()),
                last_step=ts.STEP_TITLES.get(self._state.current_step, self._state.current_step),
            )
        else:
            self._reply.say("utter_greet")

    async def _on_inform(self, turn: Turn) -> None:
        state = self._state
        browser = turn.first("browser")
        bank = turn.first("bank")
        if browser and state.current_step == ts.CLEAR_CACHE:
            self._set("browser", browser)
            self._set("question", {})
            await self._present(ts.CLEAR_CACHE)
            return
        if (bank or turn.first("bank_url")) and state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            if browser:
                self._set("browser", browser)
            # a bank (or its address) on its own: another bank, a saved topic, or the missing detail
            await self._on_problem_report(turn)
            return
        if browser:
            self._set("browser", browser)
            if state.current_step:
                # "chrome" at "did the feed update?": noted for the cache step, then the question again.
                # Noted only at the first unclear answer to this question: a browser named again is no
                # news, and the note must not repeat turn after turn.
                key = self._question_key()
                if not (state.question.get("key") == key and state.question.get("count", 0) >= 1):
                    self._reply.say("utter_noted_browser", browser=browsers.display_name(browser))
                self._reask()
            else:
                self._reply.say("utter_noted_browser", browser=browsers.display_name(browser))
                if state.diagnosis in (None, dx.OUT_OF_SCOPE):
                    self._nothing_pending()
            return
        if state.current_step or self._question_key():
            self._reask()
        else:
            self._nothing_pending()  # noted (e.g. the browser), but nothing to apply it to yet

    async def _on_nlu_fallback(self, turn: Turn) -> None:
        if turn.entities.get("error_code"):
            await self._on_problem_report(turn)  # a known code is enough to go on
            return
        if any(turn.first(e) for e in ("bank", "bank_url", "browser")) and self._state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            await self._on_inform(turn)  # just a bank or browser name: treat it as the detail asked for
            return
        key = self._question_key()
        if self._state.current_step or (key and key not in CLARIFY_QUESTIONS):
            self._reask()
            return
        self._clarify()

    async def _on_ask_human(self, turn: Turn) -> None:
        state = self._state
        remaining = ts.remaining_steps(state.diagnosis, state.steps_tried)
        if state.current_step in remaining:
            remaining.remove(state.current_step)
            remaining.insert(0, state.current_step)
        if state.current_step == ts.WAIT_A_DAY or remaining == [ts.WAIT_A_DAY]:
            # a person now instead of waiting a day: recorded as the customer's choice
            self._set("steps_tried", ts.record_step(state.steps_tried, ts.WAIT_A_DAY))
            self._set("step_outcomes", {**state.step_outcomes, ts.WAIT_A_DAY: ts.OUTCOME_SKIPPED_FOR_PERSON})
            self._set("wait_day", {**state.wait_day, "choice": "person"})
            self._reply.say("utter_escalated_on_request")
            self._escalate("user_request")
            return
        if state.human_offered or not remaining:
            self._reply.say("utter_escalated_on_request")
            self._escalate("user_request")
            return
        self._set("human_offered", True)
        self._reply.ask("utter_offer_human", remaining_steps=ts.describe_steps(remaining))

    # ------------------------------------------------------------------ adjacent topics, the bank-problem gate
    def _answer_adjacent_or_unsure(self, turn: Turn) -> bool:
        """Adjacent bank-feed questions (duplicates, matching, connecting, how far back) get their short
        answer and keep whatever the conversation was doing. A bank-error intent with no sign of a
        bank-connection problem (``dx.needs_clarifying``), or an unsure classification with none, gets
        one clarifying question instead of a troubleshooting flow. True when this turn was answered here."""
        intent = turn.intent
        if intent in dx.ADJACENT_INTENTS:
            self._reply.say(dx.ADJACENT_INTENTS[intent])
            return True
        codes = turn.entities.get("error_code", [])
        banks = (turn.entities.get("bank") or []) + (turn.entities.get("bank_url") or [])
        unsure = (
            intent == "nlu_fallback"
            and turn.text is not None
            and self._state.diagnosis in (None, dx.OUT_OF_SCOPE)
            and not dx.has_bank_problem_sign(turn.text, codes, banks)
        )
        if not unsure and not dx.needs_clarifying(intent, turn.text, codes, banks):
            return False
        if self._state.current_step:
            self._clarify()  # a fix is pending: ask about it, as for any unclear answer
        else:
            self._reply.ask("utter_clarify_topic", buttons=clarifying_buttons(turn.ranking))
        return True

    # ------------------------------------------------------------------ steps
    def _clarify(self) -> None:
        if self._state.current_step:
            self._reask()
        elif self._state.question.get("key") in ("utter_clarify", "utter_ask_what_now"):
            self._reask()
        else:
            self._reply.ask("utter_clarify")

    def _nothing_pending(self) -> None:
        self._reply.say("utter_nothing_pending")

    def _site_checked(self) -> bool:
        key = self._state.bank if self._listed_bank() else self._bank_login_url()
        return bool(key) and key in self._state.check_results

    async def _step_failed(self, outcome: str) -> None:
        state = self._state
        step = state.current_step
        if step == ts.WAIT_A_DAY and outcome == ts.OUTCOME_FAILED and not self._waited_long_enough():
            # "still failing" a minute after "give it a day" says nothing yet: check back, or a person
            self._reply.ask("utter_wait_too_soon", bank_name=state.bank or "your bank")
            return
        if step:
            self._set("steps_tried", ts.record_step(state.steps_tried, step))
            if state.step_outcomes.get(step) != ts.OUTCOME_BANK_PROBLEM or outcome != ts.OUTCOME_FAILED:
                self._set("step_outcomes", {**state.step_outcomes, step: outcome})
        self._set("current_step", None)
        await self._present_next()

    def _waited_long_enough(self) -> bool:
        since = self._state.wait_day.get("since")
        return self._state.reminder_status == "sent" or (since is not None and self.clock() - float(since) >= WAIT_ENOUGH_SECONDS)

    async def _present_next(self) -> None:
        step = ts.next_step(self._state.diagnosis, self._state.steps_tried)
        if step is None:
            self._reply.say("utter_escalating")
            record = self._record()
            if self._state.wait_day.get("choice") == "reminder" and self._state.reminder_status == "sent":
                reason = "still_failing_after_a_day"
            else:
                reason = "all_steps_tried" if not record.skipped else "no_fix_left"
            self._escalate(reason)
            return
        await self._present(step)

    async def _present(self, step: Optional[str]) -> None:
        if step is None:
            await self._present_next()
            return
        self._set("current_step", step)
        if step == ts.SITE_CHECK:
            await self._present_site_check()
        elif step == ts.CREDENTIAL_CHECK:
            self._present_credential_check()
        elif step == ts.CLEAR_CACHE:
            browser = self._state.browser
            if browser:
                self._reply.ask(browsers.cache_response(browser))
            else:
                self._reply.ask("utter_ask_browser")
        elif step == ts.MANUAL_UPLOAD:
            self._say_manual_upload()
            self._reply.ask("utter_ask_manual_upload_result")
        else:
            if step == ts.WAIT_A_DAY and not self._state.wait_day.get("since"):
                self._set("wait_day", {"since": self.clock()})
            self._reply.ask(f"utter_step_{step}")

    def _escalate(self, reason: str) -> None:
        """Raises the flag a rule turns into ``action_escalate`` (which opens the hand-off)."""
        self._set("escalation_due", True)
        self._set("escalation_reason", reason)
        self._set("current_step", None)

    # ------------------------------------------------------------------ wait a day: check back
    async def _on_remind_me(self, turn: Turn) -> None:
        state = self._state
        if state.current_step != ts.WAIT_A_DAY:
            if state.current_step or self._question_key():
                self._reask()
            else:
                self._nothing_pending()
            return
        scheduled = self.reminders is not None and await self.reminders.schedule(topic_title(self._topic_key()))
        if scheduled:
            self._set("wait_day", {**state.wait_day, "choice": "reminder"})
            self._set("reminder_status", "scheduled")
            self._reply.say("utter_reminder_scheduled")
        else:
            self._reply.ask("utter_reminder_unavailable")

    # ------------------------------------------------------------------ bank site check
    def _awaits_sign_in_address(self, intent: Optional[str]) -> bool:
        """A web address while the site check waits for one (an unlisted or skipped bank): it is the
        sign-in address asked for, whatever the classifier made of a bare URL."""
        s = self._state
        return (
            s.current_step == ts.SITE_CHECK
            and s.diagnosis not in (None, dx.OUT_OF_SCOPE)
            and not self._site_checked()
            and intent not in ("fixed_it", "ask_human", "stop")
        )

    async def _on_sign_in_address(self, turn: Turn) -> None:
        known = self.directory.from_url(turn.first("bank_url") or "")
        if known and known.name != self._state.bank:
            self._set("bank", known.name)
        self._set("question", {})
        await self._present(ts.SITE_CHECK)

    async def _present_site_check(self) -> None:
        state = self._state
        login_url = self._bank_login_url()
        if login_url is None:
            if state.bank_site == SKIP_BANK:
                self._reply.say("utter_site_skipped")
                self._reply.ask("utter_ask_bank_login", bank_login="your bank's own website")
                return
            if state.bank and not self._listed_bank():
                # a bank the directory doesn't know: go on without the automatic check
                self._reply.say("utter_site_unlisted", bank_name=state.bank)
                self._reply.ask("utter_ask_bank_login", bank_login="your bank's own website")
                return
            self._set("needs_bank", True)  # a rule runs bank_form, then this action again
            return
        if await self._known_outage():
            return
        key = state.bank if self._listed_bank() else login_url  # an unlisted bank is cached by its own address
        result = await self.check_site(key, login_url)
        self._set("check_results", {**state.check_results, key: result.to_dict()})
        if result.reason == "not_allowed":
            # nothing was contacted: no up/down, status or timing, and the address is not repeated back
            self._reply.say_text(CANNOT_CHECK_ADDRESS)
            self._reply.ask("utter_ask_bank_login", bank_login="your bank's own website")
            return
        self._reply.say(site_response(result), **site_wording(result, state.bank or self._host(login_url)))
        self._reply.ask("utter_ask_bank_login", bank_login=login_url)

    # ------------------------------------------------------------------ known outages
    async def _known_outage(self) -> bool:
        """If many users already report this bank down: say so, skip what can't help, give the manual
        upload steps and ask one question: a back-online notice? True when the outage path was taken."""
        state = self._state
        if self.outages is None or not state.bank or state.diagnosis not in OUTAGE_DIAGNOSES:
            return False
        if all(step in state.steps_tried for step in USELESS_DURING_OUTAGE):
            return False  # already told (or past those steps anyway), this round
        outage = await self.outages.current(state.bank)
        if not outage:
            return False
        self._reply.say("utter_known_outage", bank_name=state.bank, since=outage["since"], reports=str(outage["report_count"]))
        steps, outcomes = list(state.steps_tried), dict(state.step_outcomes)
        for step in USELESS_DURING_OUTAGE:
            if step not in steps:
                steps.append(step)
                outcomes[step] = ts.OUTCOME_SKIPPED_OUTAGE
        self._set("steps_tried", steps)
        self._set("step_outcomes", outcomes)
        self._set("needs_bank", False)
        step = ts.next_step(state.diagnosis, steps)
        if step != ts.MANUAL_UPLOAD:
            await self._present(step)
            return True
        self._set("current_step", ts.MANUAL_UPLOAD)
        self._say_manual_upload()
        self._reply.ask("utter_offer_outage_notice", bank_name=state.bank)
        return True

    def _say_manual_upload(self) -> None:
        """QuickBooks' Upload from file, and our file check where the client can send us the file."""
        self._reply.say("utter_step_manual_upload")
        if self._turn.takes_files:
            self._reply.say("utter_offer_file_check")

    async def _on_notify_when_back(self, turn: Turn) -> None:
        state = self._state
        url = self._bank_login_url()
        if not state.bank or url is None or self.outages is None:
            self._nothing_pending()
            return
        if await self.outages.subscribe(state.bank, url):
            self._reply.say("utter_outage_notice_confirmed", bank_name=state.bank)
        else:
            self._reply.say("utter_outage_notice_unavailable")
        if state.current_step == ts.MANUAL_UPLOAD:
            self._reply.ask("utter_ask_manual_upload_result")

    # ------------------------------------------------------------------ credential check
    def _present_credential_check(self) -> None:
        answers = self._state.credential_answers
        question = cc.next_question(answers)
        if question is not None and not answers.get(cc.ADVICE_GIVEN):
            self._reply.ask(cc.QUESTION_RESPONSES[question], bank_login=self._bank_login_url() or "your bank's own website")
            return
        responses = cc.advice(answers)
        for response in responses[:-1]:
            self._reply.say(response)
        self._reply.ask(responses[-1])
        if not answers.get(cc.ADVICE_GIVEN):
            self._set("credential_answers", {**answers, cc.ADVICE_GIVEN: True})

    async def _answer_credential_question(self, yes: bool) -> bool:
        """Treats affirm/deny as the answer to a pending credential question; False if none is pending."""
        state = self._state
        if state.current_step != ts.CREDENTIAL_CHECK or state.credential_answers.get(cc.ADVICE_GIVEN):
            return False
        self._set("credential_answers", cc.answer(state.credential_answers, yes))
        self._present_credential_check()
        return True


def site_response(result: ProbeResult) -> str:
    """The utter_site_* response for a probe. When nothing outside could be reached (our side's
    network), the customer hears only that the bank's site could not be checked: what our servers can
    or cannot reach is not theirs to know."""
    if result.reason == "no_outbound_connectivity":
        return "utter_site_unchecked"
    return f"utter_site_{result.status}"


def site_wording(result: ProbeResult, bank_name: str) -> Dict[str, str]:
    """Variables for the utter_site_* responses, worded after what was actually observed."""
    from urllib.parse import urlsplit

    observed = {
        "dns_failure": "its address doesn't resolve",
        "connection_refused": "it refuses connections",
        "tls_error": "its security certificate fails",
        "timeout": "it didn't answer in time",
        "invalid_url": "the address isn't valid",
        "too_many_redirects": "it keeps redirecting",
    }.get(result.reason)
    if observed is None and result.http_status:
        observed = f"it answers with an error (HTTP {result.http_status})"
    host = (urlsplit(result.url).hostname or result.url).lower()
    elapsed = result.elapsed_ms / 1000
    return {
        "bank_name": bank_name,
        "bank_host": host,
        "observed": observed or "no clear answer",
        "seconds": f"{elapsed:.1f}",
        "elapsed": f" ({elapsed:.1f} s)" if result.status == "up" else "",
        "retry_after": f" (it says to try again after {result.retry_after})" if result.retry_after else "",
    }


# The options of the clarifying question (utter_clarify_topic): what each likely intent is called on its button.
CLARIFY_OPTIONS: Dict[str, str] = {
    "report_bank_unavailable": "My bank feed shows an error",
    "report_connection_failure": "My bank feed stopped updating",
    "report_credentials": "My bank sign-in isn't accepted",
    "report_verification": "My bank asks for a code or security answer",
    "report_account_not_found": "QuickBooks can't find my account",
    "report_consent_expired": "My bank consent expired",
    "ask_duplicate_transactions": "Duplicate transactions",
    "ask_match_categorise": "Matching or categorising transactions",
    "ask_disconnect_reconnect": "Connecting or disconnecting an account",
    "ask_download_window": "How far back transactions download",
}
CLARIFY_DEFAULTS = ("report_bank_unavailable", "ask_duplicate_transactions")
SOMETHING_ELSE = {"title": "Something else", "payload": "/out_of_scope"}


def clarifying_buttons(ranking: List[Tuple[str, float]], options: int = 2) -> List[Dict[str, str]]:
    """The clarifying question's buttons: the ``options`` likeliest bank-feed topics of the classifier's
    ranking (a bank error first when one ranks), then "Something else". With no ranking (a turn built in
    code), a bank-feed error and duplicate transactions."""
    ranked = [name for name, _ in ranking if name in CLARIFY_OPTIONS]
    errors = [name for name in ranked if name in dx.BANK_ERROR_INTENTS]
    chosen: List[str] = errors[:1]
    chosen += [name for name in ranked if name not in chosen][: options - len(chosen)]
    chosen += [name for name in CLARIFY_DEFAULTS if name not in chosen][: options - len(chosen)]
    return [{"title": CLARIFY_OPTIONS[name], "payload": f"/{name}"} for name in chosen] + [dict(SOMETHING_ELSE)]


def topic_key(diagnosis: Optional[str], bank: Optional[str]) -> str:
    return f"{diagnosis}|{bank or ''}"


def topic_title(key: str) -> str:
    """How a topic ("diagnosis|bank") is named to the user: "Error 102 with Chase"."""
    diagnosis, _, bank = key.partition("|")
    code = dx.DEFAULT_CODE.get(diagnosis)
    what = {
        dx.BANK_UNAVAILABLE: f"Error {code}",
        dx.CREDENTIALS: f"the sign-in mismatch (Error {code})",
        dx.VERIFICATION: f"the security check (Error {code})",
        dx.ACCOUNT_NOT_FOUND: f"the missing account (Error {code})",
        dx.CONSENT_EXPIRED: "the expired bank consent",
        dx.CONNECTION_FAILURE: "the bank feed that won't connect",
    }.get(diagnosis, "your bank feed")
    return f"{what} with {bank}" if bank else what
