"""Which browser a user is on, from what they say or from the chat widget's user agent."""

from __future__ import annotations

from typing import Optional

SUPPORTED = ("chrome", "edge", "firefox", "safari")


def browser_from_user_agent(user_agent: Optional[str]) -> Optional[str]:
    if not user_agent:
        return None
    ua = user_agent.lower()
    if "edg/" in ua or "edge/" in ua:
        return "edge"
    if "firefox/" in ua or "fxios/" in ua:
        return "firefox"
    if "opr/" in ua or "opera" in ua:
        return "other"
    if "chrome/" in ua or "crios/" in ua or "chromium/" in ua:
        return "chrome"
    if "safari/" in ua:
        return "safari"
    return None


def cache_response(browser: Optional[str]) -> str:
    return f"utter_clear_cache_{browser if browser in SUPPORTED else 'other'}"


def display_name(browser: Optional[str]) -> str:
    """How a browser is named to the user ("Chrome"), "your browser" for any other."""
    return {"chrome": "Chrome", "edge": "Edge", "firefox": "Firefox", "safari": "Safari"}.get(browser or "", "your browser")
