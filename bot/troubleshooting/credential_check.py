"""The guided credential check: yes/no questions that never ask for, or accept, a password.

It finds out why the sign-in saved in QuickBooks fails (Error 103/179, and a step of the 102 path)
and ends with the Edit sign-in info instructions, plus notes that fit the answers.
"""

from __future__ import annotations

from typing import Dict, List, Optional

LOGIN_WORKS = "login_works"
SAME_USER_ID = "same_user_id"
PASSWORD_CHANGED = "password_changed"
THIRD_PARTY_ACCESS = "third_party_access"
NEW_ACCOUNT = "new_account"

QUESTIONS = (LOGIN_WORKS, SAME_USER_ID, PASSWORD_CHANGED, THIRD_PARTY_ACCESS, NEW_ACCOUNT)
QUESTION_RESPONSES = {q: f"utter_cred_{q}" for q in QUESTIONS}
ADVICE_GIVEN = "advice_given"

Answers = Dict[str, bool]


def next_question(answers: Answers) -> Optional[str]:
    """The next question to ask, or None when the check is complete."""
    if answers.get(LOGIN_WORKS) is False:
        return None  # nothing else matters until the bank accepts the login on its own site
    for question in QUESTIONS:
        if question not in answers:
            return question
    return None


def answer(answers: Answers, yes: bool) -> Answers:
    """``answers`` with the pending question answered."""
    question = next_question(answers)
    if question is None:
        return dict(answers)
    return {**answers, question: yes}


def advice(answers: Answers) -> List[str]:
    """Domain responses to send once the questions are answered, ending with Edit sign-in info."""
    responses: List[str] = []
    if answers.get(LOGIN_WORKS) is False:
        responses.append("utter_cred_fix_bank_login_first")
    if answers.get(SAME_USER_ID) is False:
        responses.append("utter_cred_note_user_id")
    if answers.get(PASSWORD_CHANGED) is True:
        responses.append("utter_cred_note_password_changed")
    if answers.get(THIRD_PARTY_ACCESS) is False:
        responses.append("utter_cred_note_third_party")
    if answers.get(NEW_ACCOUNT) is True:
        responses.append("utter_cred_note_new_account")
    responses.append("utter_cred_edit_sign_in")
    return responses
