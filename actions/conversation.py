"""The troubleshooting conversation as plain Python: one user turn in, replies and slot changes out.

``Troubleshooter.handle`` holds every decision of the dialogue (diagnose, pick the next fix, run the
bank-site check, the credential check, topic changes, escalation). The Rasa action in
``actions/actions.py`` only turns the tracker into a ``State`` and a ``Turn`` and the ``Reply`` back
into messages and ``SlotSet`` events, so the whole flow is testable without Rasa.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Tuple

from actions import browsers
from actions import credential_check as cc
from actions import diagnosis as dx
from actions import troubleshooting as ts
from actions.bank_directory import BankDirectory
from actions.site_prober import ProbeResult
from bot.redaction import describe, without_userinfo

SKIP_BANK = "skip"
HANDOFF_OPEN = ("requested", "waiting", "assigned")

# Intents that answer "did it work?" and the like; everything else is a new message about the problem.
CHITCHAT_RESPONSES = {
    "goodbye": "utter_goodbye",
    "thank": "utter_you_are_welcome",
    "bot_challenge": "utter_iamabot",
    "ask_capabilities": "utter_capabilities",
}

# Intents that a known QuickBooks error code in the same message turns into a problem report.
CODE_OVERRIDABLE_INTENTS = {"inform", "nlu_fallback", "greet", "thank", "goodbye", "bot_challenge", "ask_capabilities"}

SiteCheck = Callable[[str, str], Awaitable[ProbeResult]]

#: What the customer reads when the address they gave is one the bot may not contact (the outbound policy
#: refused it: not a public web address, an unusual port or scheme). It says nothing about the target.
CANNOT_CHECK_ADDRESS = ("I can't check that address, so I haven't tested it. I can only check a bank's public "
                        "website, such as the page where you sign in to online banking.")


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
    handoff_status: Optional[str] = None

    @classmethod
    def from_slots(cls, slots: Dict[str, Any]) -> "State":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in slots.items() if k in known and v is not None}
        return cls(**values)


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

    def say(self, response: str, **variables: Any) -> None:
        self.messages.append({"response": response, **variables})

    def say_text(self, text: str) -> None:
        """A message worded in code, not a domain response."""
        self.messages.append({"text": text})


class Outages(Protocol):
    """What the conversation needs of the outage radar (see actions/outage_desk.py)."""

    async def current(self, bank: str) -> Optional[Dict[str, Any]]: ...

    async def record_report(self, bank: str, diagnosis: str) -> None: ...

    async def subscribe(self, bank: str, probe_url: str) -> bool: ...


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
    ):
        self.directory = directory
        self.check_site = check_site
        self.clock = clock
        self.outages = outages

    # ------------------------------------------------------------------ entry point
    async def handle(self, state: State, turn: Turn) -> Reply:
        # The rules that run bank_form / action_escalate after this action read the two flags
        # needs_bank and escalation_due (data/rules.yml). Both start false (domain initial_value)
        # and are only written when they change: writing them every turn made every tracker ~20 %
        # longer, and Rasa loads, replays and featurizes the whole tracker on every message.
        return await self._handle(state, turn)

    async def _handle(self, state: State, turn: Turn) -> Reply:
        reply = Reply()
        self._state, self._reply = state, reply
        if turn.sensitive:
            reply.say("utter_sensitive_warning", removed=describe(turn.sensitive_kinds))
        intent = turn.intent
        if state.browser is None and turn.user_agent:
            ua_browser = browsers.browser_from_user_agent(turn.user_agent)
            if ua_browser:
                self._set("browser", ua_browser)

        if state.handoff_status in HANDOFF_OPEN and intent not in ("fixed_it", "stop"):
            reply.say("utter_already_escalated")
            return reply

        if state.needs_bank:
            # the bank form just finished: run the site check unless the user changed course
            self._set("needs_bank", False)
            if intent not in ("fixed_it", "ask_human", "stop"):
                await self._present(ts.SITE_CHECK)
                return reply

        codes = turn.entities.get("error_code", [])
        if intent in CODE_OVERRIDABLE_INTENTS and any(c in dx.CODE_DIAGNOSIS for c in codes):
            # "error 105 td canada trust" read as a mere detail: a QuickBooks code makes it a report
            await self._on_problem_report(turn)
            return reply

        if self._answer_adjacent_or_unsure(turn):
            return reply

        handler = getattr(self, f"_on_{intent}", None) if intent else None
        if handler is not None:
            await handler(turn)
        elif intent in CHITCHAT_RESPONSES:
            self._diagnose(turn)
            reply.say(CHITCHAT_RESPONSES[intent])
        else:
            await self._on_problem_report(turn)
        return reply

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

        new_key = self._topic_key(diagnosis)
        if previous_key and previous_key != new_key and not self._same_topic_with_bank_added(previous_key, new_key):
            await self._switch_topic(previous_key, new_key, bank_named=turn.first("bank") is not None)
            return
        self._set_current_topic(new_key)

        if state.resolved:
            self._restart_round()
        if state.bank and self.outages is not None:
            await self.outages.record_report(state.bank, diagnosis)
            if await self._known_outage():
                return
        if state.current_step and previous == diagnosis:
            if state.current_step == ts.SITE_CHECK and turn.first("bank") and not self._site_checked():
                await self._present(ts.SITE_CHECK)
                return
            # the same problem reported again while a fix is pending: that fix didn't help
            await self._step_failed(ts.OUTCOME_FAILED)
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

    def _progress(self) -> Dict[str, Any]:
        s = self._state
        return {
            "diagnosis": s.diagnosis,
            "bank": s.bank,
            "error_code": s.error_code,
            "steps_tried": list(s.steps_tried),
            "step_outcomes": dict(s.step_outcomes),
            "current_step": s.current_step,
            "credential_answers": dict(s.credential_answers),
        }

    async def _switch_topic(self, old_key: str, new_key: str, bank_named: bool) -> None:
        saved = dict(self._state.topics.get("saved", {}))
        # slot mappings already put this message's bank/code in the slots: the old topic keeps its own
        saved[old_key] = {
            **self._progress(),
            "diagnosis": old_key.partition("|")[0],
            "bank": old_key.partition("|")[2] or None,
            "error_code": self._state.topics.get("current_code"),
        }
        resume = saved.pop(new_key, None)
        if resume is None and not bank_named:
            # "back to the 102": the user named the problem but not the bank; find it among saved topics
            diagnosis = new_key.partition("|")[0]
            match = next((k for k in reversed(list(saved)) if k.partition("|")[0] == diagnosis), None)
            if match:
                new_key, resume = match, saved.pop(match)
        self._set("topics", {"current": new_key, "current_code": self._state.error_code, "saved": saved})
        if resume:
            for slot in ("diagnosis", "bank", "error_code", "steps_tried", "step_outcomes", "current_step", "credential_answers"):
                self._set(slot, resume.get(slot) if resume.get(slot) is not None else ([] if slot == "steps_tried" else ({} if slot in ("step_outcomes", "credential_answers") else None)))
            self._set("resolved", False)
            self._reply.say(
                "utter_topic_resumed",
                topic=topic_title(new_key),
                steps_done=ts.describe_steps(self._state.steps_tried),
            )
            await self._present(self._state.current_step or ts.next_step(self._state.diagnosis, self._state.steps_tried))
            return
        self._set("steps_tried", [])
        self._set("step_outcomes", {})
        self._set("current_step", None)
        self._set("credential_answers", {})
        self._set("resolved", False)
        self._reply.say("utter_topic_switched", topic=topic_title(new_key), previous_topic=topic_title(old_key))
        self._introduce(self._state.diagnosis)
        await self._present_next()

    def _restart_round(self) -> None:
        self._set("resolved", False)
        self._set("steps_tried", [])
        self._set("step_outcomes", {})
        self._set("current_step", None)
        self._set("credential_answers", {})
        self._set("human_offered", False)

    # ------------------------------------------------------------------ answers to "did it work?"
    async def _on_deny(self, turn: Turn) -> None:
        if await self._answer_credential_question(False):
            return
        if self._state.current_step:
            await self._step_failed(ts.OUTCOME_FAILED)
        elif self._state.diagnosis not in (None, dx.OUT_OF_SCOPE) and not self._state.resolved:
            await self._present_next()  # e.g. back from a specialist and still failing
        else:
            self._nothing_pending()

    async def _on_affirm(self, turn: Turn) -> None:
        if await self._answer_credential_question(True):
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

    async def _on_bank_site_problem(self, turn: Turn) -> None:
        step = self._state.current_step or ts.SITE_CHECK
        self._set("step_outcomes", {**self._state.step_outcomes, step: ts.OUTCOME_BANK_PROBLEM})
        self._set("current_step", step)
        self._reply.say("utter_bank_site_problem")

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
        self._set("credential_answers", {})
        self._set("resolved", True)
        if fixed_by:
            summary = f"{topic_title(self._topic_key())} was fixed by {ts.STEP_TITLES[fixed_by]}"
            earlier = [s for s in steps if s != fixed_by]
            if earlier:
                summary += f", after {ts.describe_steps(earlier)}"
        else:
            summary = f"{topic_title(self._topic_key())} is working again"
            if steps:
                summary += f" (we'd covered {ts.describe_steps(steps)})"
        self._reply.say("utter_resolved", summary=summary + ".")
        self._reply.say("utter_prevention_tips")

    async def _on_continue_troubleshooting(self, turn: Turn) -> None:
        if self._state.diagnosis in (None, dx.OUT_OF_SCOPE):
            self._nothing_pending()
            return
        await self._present(self._state.current_step or ts.next_step(self._state.diagnosis, self._state.steps_tried))

    async def _on_stop(self, turn: Turn) -> None:
        if self._state.handoff_status in HANDOFF_OPEN:
            self._set("handoff_status", "closed")
        self._set("current_step", None)
        self._set("credential_answers", {})
        self._reply.say("utter_stopped")

    async def _on_greet(self, turn: Turn) -> None:
        self._diagnose(turn)
        if self._state.current_step and not self._state.resolved:
            self._reply.say(
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
            await self._present(ts.CLEAR_CACHE)
            return
        if browser:
            self._set("browser", browser)
        if (bank or turn.first("bank_url")) and state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            # a bank (or its address) on its own: another bank, a saved topic, or the missing detail
            await self._on_problem_report(turn)
            return
        if state.current_step:
            await self._present(state.current_step)
        else:
            self._nothing_pending()  # noted (e.g. the browser), but nothing to apply it to yet

    async def _on_nlu_fallback(self, turn: Turn) -> None:
        if turn.entities.get("error_code"):
            await self._on_problem_report(turn)  # a known code is enough to go on
            return
        if any(turn.first(e) for e in ("bank", "bank_url", "browser")) and self._state.diagnosis not in (None, dx.OUT_OF_SCOPE):
            await self._on_inform(turn)  # just a bank or browser name: treat it as the detail asked for
            return
        self._clarify()

    async def _on_ask_human(self, turn: Turn) -> None:
        state = self._state
        remaining = ts.remaining_steps(state.diagnosis, state.steps_tried)
        if state.current_step in remaining:
            remaining.remove(state.current_step)
            remaining.insert(0, state.current_step)
        if state.human_offered or not remaining:
            self._reply.say("utter_escalated_on_request")
            self._escalate()
            return
        self._set("human_offered", True)
        self._reply.say("utter_offer_human", remaining_steps=ts.describe_steps(remaining))

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
            self._reply.say("utter_clarify_topic", buttons=clarifying_buttons(turn.ranking))
        return True

    # ------------------------------------------------------------------ steps
    def _clarify(self) -> None:
        if self._state.current_step:
            self._reply.say("utter_clarify_step", step_title=ts.STEP_TITLES.get(self._state.current_step, "the last step"))
        else:
            self._reply.say("utter_clarify")

    def _nothing_pending(self) -> None:
        self._reply.say("utter_nothing_pending")

    def _site_checked(self) -> bool:
        key = self._state.bank or self._bank_login_url()
        return bool(key) and key in self._state.check_results

    async def _step_failed(self, outcome: str) -> None:
        state = self._state
        step = state.current_step
        if step:
            self._set("steps_tried", ts.record_step(state.steps_tried, step))
            if state.step_outcomes.get(step) != ts.OUTCOME_BANK_PROBLEM or outcome == ts.OUTCOME_ALREADY_TRIED:
                self._set("step_outcomes", {**state.step_outcomes, step: outcome})
        self._set("current_step", None)
        self._set("credential_answers", {})
        await self._present_next()

    async def _present_next(self) -> None:
        step = ts.next_step(self._state.diagnosis, self._state.steps_tried)
        if step is None:
            self._reply.say("utter_escalating")
            self._escalate()
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
                self._reply.say(browsers.cache_response(browser))
            else:
                self._reply.say("utter_ask_browser")
        else:
            self._reply.say(f"utter_step_{step}")

    def _escalate(self) -> None:
        """Raises the flag a rule turns into ``action_escalate`` (which opens the hand-off)."""
        self._set("escalation_due", True)
        self._set("current_step", None)

    # ------------------------------------------------------------------ bank site check
    async def _present_site_check(self) -> None:
        state = self._state
        login_url = self._bank_login_url()
        if login_url is None:
            if state.bank_site == SKIP_BANK:
                self._reply.say("utter_site_skipped")
                self._reply.say("utter_ask_bank_login", bank_login="your bank's own website")
                return
            self._set("needs_bank", True)  # a rule runs bank_form, then this action again
            return
        if await self._known_outage():
            return
        key = state.bank or login_url  # an unlisted bank is cached by its own address
        result = await self.check_site(key, login_url)
        self._set("check_results", {**state.check_results, key: result.to_dict()})
        if result.reason == "not_allowed":
            # nothing was contacted: no up/down, status or timing, and the address is not repeated back
            self._reply.say_text(CANNOT_CHECK_ADDRESS)
            self._reply.say("utter_ask_bank_login", bank_login="your bank's own website")
            return
        self._reply.say(f"utter_site_{result.status}", **site_wording(result, state.bank or self._host(login_url)))
        self._reply.say("utter_ask_bank_login", bank_login=login_url)

    # ------------------------------------------------------------------ known outages
    async def _known_outage(self) -> bool:
        """If many users already report this bank down: say so, skip what can't help, offer upload
        and a back-online notice. True when the outage path was taken."""
        state = self._state
        if self.outages is None or not state.bank or state.diagnosis not in OUTAGE_DIAGNOSES:
            return False
        if state.step_outcomes.get(ts.SITE_CHECK) == ts.OUTCOME_SKIPPED_OUTAGE:
            return False  # already told, this round
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
        await self._present(ts.next_step(state.diagnosis, steps))
        self._reply.say("utter_offer_outage_notice", bank_name=state.bank)
        return True

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

    # ------------------------------------------------------------------ credential check
    def _present_credential_check(self) -> None:
        answers = self._state.credential_answers
        question = cc.next_question(answers)
        if question is not None and not answers.get(cc.ADVICE_GIVEN):
            self._reply.say(cc.QUESTION_RESPONSES[question], bank_login=self._bank_login_url() or "your bank's own website")
            return
        for response in cc.advice(answers):
            self._reply.say(response)
        self._set("credential_answers", {**answers, cc.ADVICE_GIVEN: True})

    async def _answer_credential_question(self, yes: bool) -> bool:
        """Treats affirm/deny as the answer to a pending credential question; False if none is pending."""
        state = self._state
        if state.current_step != ts.CREDENTIAL_CHECK or state.credential_answers.get(cc.ADVICE_GIVEN):
            return False
        self._set("credential_answers", cc.answer(state.credential_answers, yes))
        self._present_credential_check()
        return True


def site_wording(result: ProbeResult, bank_name: str) -> Dict[str, str]:
    """Variables for the utter_site_* responses, worded after what was actually observed."""
    from urllib.parse import urlsplit

    observed = {
        "dns_failure": "its address doesn't resolve",
        "connection_refused": "it refuses connections",
        "tls_error": "its security certificate fails",
        "timeout": "it didn't answer in time",
        "no_outbound_connectivity": "I can't reach other websites either just now",
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
