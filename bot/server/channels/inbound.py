"""Checks what users send before it reaches the bot: shape, type, size, and control characters.

Bad input gets a clear message (a 4xx on HTTP) and never a crash; good input is passed on with
control characters removed, so nothing a user meant to say is lost.

What a web client may say about itself is allow-listed (``CLIENT_METADATA``: short strings such as
the page it is on); every other metadata key is dropped, so a client can never pass for another
channel (Slack's ``out_channel``/``thread_id``, Teams' ``botframework.serviceUrl``, ...). A message's
channel is the channel it arrived on, whatever the body says.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Dict, Optional, Tuple

MAX_MESSAGE_CHARS = 5_000
MAX_SENDER_CHARS = 128
MAX_BODY_BYTES = 64 * 1024
MAX_METADATA_BYTES = 8 * 1024

#: Metadata keys a REST / widget client may send, with their longest accepted value (strings only).
# timezone / hour_cycle: how the customer reads a time of day (bot/customer_time.py checks the values);
# capabilities: bot/troubleshooting/conversation.py takes_files
CLIENT_METADATA = {
    "language": 35,
    "page_url": 2000,
    "user_agent": 512,
    "client_message_id": 128,
    "timezone": 64,
    "hour_cycle": 3,
    # what the client can do, comma-separated: "file_upload" (it can send us a bank file)
    "capabilities": 100,
}

# C0/C1 control characters other than tab and newline, and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|[\ud800-\udfff]")


class InboundError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def clean_text(text: str) -> str:
    """The text without control characters, in Unicode NFC (emoji and right-to-left text are kept)."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", text))


def check_message(message: Any) -> str:
    if not isinstance(message, str):
        raise InboundError(400, "'message' must be a string.")
    text = clean_text(message)
    if len(text) > MAX_MESSAGE_CHARS:
        raise InboundError(413, f"The message is too long: at most {MAX_MESSAGE_CHARS} characters, please.")
    if not text.strip():
        raise InboundError(400, "The message is empty.")
    return text


def check_sender(sender: Any) -> str:
    if not isinstance(sender, str) or not sender.strip():
        raise InboundError(400, "'sender' must be a non-empty string.")
    if len(sender) > MAX_SENDER_CHARS or _CONTROL.search(sender):
        raise InboundError(400, f"'sender' must be at most {MAX_SENDER_CHARS} printable characters.")
    return sender


def check_metadata(metadata: Any) -> Optional[Dict[str, Any]]:
    if metadata is None:
        return None
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise InboundError(400, "'metadata' must be a JSON object.")
    if not isinstance(metadata, dict):
        raise InboundError(400, "'metadata' must be a JSON object.")
    if len(json.dumps(metadata, default=str)) > MAX_METADATA_BYTES:
        raise InboundError(413, "'metadata' is too large.")
    return metadata


def client_metadata(metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Only the allow-listed keys of a web client's metadata, with short string values (cleaned)."""
    kept: Dict[str, Any] = {}
    for key, limit in CLIENT_METADATA.items():
        value = (metadata or {}).get(key)
        if isinstance(value, str):
            value = clean_text(value).strip()
            if value and len(value) <= limit:
                kept[key] = value
    return kept


def rest_payload(body: bytes, content_type: Optional[str]) -> Dict[str, Any]:
    """The REST channel's JSON body, checked and cleaned."""
    if len(body) > MAX_BODY_BYTES:
        raise InboundError(413, f"The request is too large (at most {MAX_BODY_BYTES // 1024} KB).")
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise InboundError(415, "Send JSON with Content-Type: application/json.")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InboundError(400, "The request body is not valid UTF-8 JSON.")
    if not isinstance(data, dict):
        raise InboundError(400, 'The request body must be a JSON object like {"sender": "...", "message": "..."}.')
    cleaned: Dict[str, Any] = {"sender": check_sender(data.get("sender")), "message": check_message(data.get("message"))}
    metadata = client_metadata(check_metadata(data.get("metadata")))
    if metadata:
        cleaned["metadata"] = metadata
    return cleaned  # anything else in the body (``input_channel`` included) is ignored


def socket_payload(data: Any, needs_session: bool) -> Tuple[Optional[str], str, Dict[str, Any]]:
    """(session id, message, metadata) of a socket ``user_uttered`` event, checked and cleaned."""
    if not isinstance(data, dict):
        raise InboundError(400, "A message must be an object with a 'message' field.")
    session_id = data.get("session_id")
    if needs_session:
        session_id = check_sender(session_id)
    message = check_message(data.get("message"))
    return session_id, message, client_metadata(check_metadata(data.get("metadata")))
