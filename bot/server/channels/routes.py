"""Base for the product's web pages and JSON endpoints mounted on the Rasa server.

Rasa only lets input channels add routes, so the agent console, the chat widget's assets and the
status JSON are "channels" users never talk to the bot through. ``url_prefix`` is absolute: Rasa
joins it onto ``/webhooks/``, which leaves the prefix itself.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rasa.core.channels.channel import InputChannel


class RoutesChannel(InputChannel):
    prefix = "/"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> "RoutesChannel":
        return cls()

    def url_prefix(self) -> str:
        return self.prefix
