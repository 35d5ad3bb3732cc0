"""What Teams messages carry besides text: hero cards for buttons and images, CSV attachments.

Rasa renders buttons as a HeroCard whose buttons are Rasa's ``{"title", "payload"}`` dicts, which
are not Bot Framework card actions (no ``type``/``value``), so Teams shows no usable buttons. Here
each button is a ``messageBack`` action (the user sees the title, the bot gets the payload as
``text`` and ``value.payload``; URL buttons are ``openUrl``), at most six to a card. A converted CSV
is attached inline as a ``data:text/csv`` URI up to 64 KB; larger ones are named, not attached.

Set-up: docs/teams.md.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from bot.upload import ConvertedFile

HERO_CARD = "application/vnd.microsoft.card.hero"
MAX_CARD_BUTTONS = 6  # Teams shows at most six buttons on a hero card
#: Converted CSVs up to this size are attached inline (``data:`` URI); larger ones are described only.
MAX_INLINE_ATTACHMENT_BYTES = 64 * 1024


def card_action(button: Mapping[str, Any]) -> Dict[str, Any]:
    """A Rasa button as a Bot Framework card action."""
    payload = button.get("payload")
    title = str(button.get("title") or payload or "")[:256]
    url = button.get("url") or (payload if isinstance(payload, str) and re.match(r"^https?://", payload) else None)
    if url:
        return {"type": "openUrl", "title": title, "value": str(url)}
    payload = str(payload if payload is not None else title)
    # messageBack: the chat shows the title as the user's message, the bot receives the payload
    return {"type": "messageBack", "title": title, "text": payload, "displayText": title, "value": {"payload": payload}}


def hero_cards(text: str, buttons: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    actions = [card_action(b) for b in buttons if isinstance(b, Mapping)]
    chunks = [actions[i : i + MAX_CARD_BUTTONS] for i in range(0, len(actions), MAX_CARD_BUTTONS)] or [[]]
    cards = []
    for i, chunk in enumerate(chunks):
        content: Dict[str, Any] = {"buttons": chunk}
        if i == 0 and text:
            content["text"] = text
        cards.append({"contentType": HERO_CARD, "content": content})
    return cards


def image_card(url: str) -> Dict[str, Any]:
    """An image, as a hero card (what Rasa's Bot Framework output sends)."""
    return {"contentType": HERO_CARD, "content": {"images": [{"url": url}]}}


def csv_attachments(converted: Sequence[ConvertedFile]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(inline attachments, names of the files too large to attach) for the converted CSV(s)."""
    attachments: List[Dict[str, Any]] = []
    too_big: List[str] = []
    for file in converted:
        if len(file.content) <= MAX_INLINE_ATTACHMENT_BYTES:
            attachments.append(
                {
                    "contentType": "text/csv",
                    "contentUrl": "data:text/csv;base64," + base64.b64encode(file.content).decode("ascii"),
                    "name": file.filename,
                }
            )
        else:
            too_big.append(file.filename)
    return attachments, too_big
