"""Block Kit for the Slack channel: message text, buttons, and what replaces them once clicked.

Buttons render as ``actions`` blocks of up to 25 buttons each (Rasa drops *all* buttons when a
message has more than 5, e.g. our "which of these is closest?" question), under a section with the
message text; a button's value is its payload. Slack's limits on text, button titles and values,
and the number of blocks are applied. Set-up: docs/slack.md.
"""

from __future__ import annotations

from typing import Any, Dict, List

# Block Kit limits
MAX_BUTTONS_PER_BLOCK = 25
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_MESSAGE_TEXT = 39_000


def escape(text: str) -> str:
    """Slack's three control characters in message text (``<`` starts links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_text(text: str) -> str:
    """A message's ``text``: escaped, at most Slack's limit."""
    return truncate(escape(text.strip()), MAX_MESSAGE_TEXT)


def button_blocks(text: str, buttons: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A section with the text, then ``actions`` blocks of at most 25 buttons each."""
    blocks: List[Dict[str, Any]] = [
        {"type": "section", "text": {"type": "plain_text", "text": truncate(text.strip() or " ", MAX_SECTION_TEXT)}}
    ]
    for start in range(0, min(len(buttons), MAX_BUTTONS_PER_BLOCK * (MAX_BLOCKS - 1)), MAX_BUTTONS_PER_BLOCK):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"rasa_button_{start + i}",
                        "text": {"type": "plain_text", "text": truncate(str(b["title"]), MAX_BUTTON_TEXT)},
                        "value": str(b["payload"])[:MAX_BUTTON_VALUE],
                    }
                    for i, b in enumerate(buttons[start : start + MAX_BUTTONS_PER_BLOCK])
                ],
            }
        )
    return blocks


def chosen_blocks(blocks: List[Any], user: str, chosen: str) -> List[Dict[str, Any]]:
    """A clicked message's blocks with its buttons replaced by "<user> chose *...*"."""
    kept = [b for b in blocks if isinstance(b, dict) and b.get("type") != "actions"]
    kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<@{user}> chose *{escape(chosen)}*"}]})
    return kept
