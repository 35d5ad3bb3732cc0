"""Times of day as the customer reads them: in their time zone, in one format on every channel.

A customer sees the widget's own message times in their browser's clock ("7:33 PM"); a time the bot
writes in a reply ("reported since ...") must read the same way, not "19:18 UTC" beside it. The client
says where it is in the message metadata, checked where it enters (``bot.server.channels.inbound``
allow-lists these keys for web clients; the Teams channel takes the activity's ``localTimezone``):

* ``timezone``: an IANA zone name such as ``America/Chicago`` (what ``Intl.DateTimeFormat`` reports);
* ``hour_cycle``: ``h12``/``h11`` (7:18 PM) or ``h23``/``h24`` (19:18), the browser's preference.

Without a usable zone the time is given in UTC and says so ("7:18 PM UTC"), in the same 12-hour format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# what IANA names look like ("Europe/London", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5"):
# checked before the name reaches the zone database, which reads files named after it
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}$")
_24_HOUR_CYCLES = {"h23", "h24"}


def zone_named(name: Any) -> Optional[ZoneInfo]:
    """The time zone called ``name``, or None for anything that is not a known IANA zone name."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.match(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class CustomerClock:
    zone: Optional[ZoneInfo] = None
    hour12: bool = True

    @classmethod
    def from_metadata(cls, metadata: Any) -> "CustomerClock":
        """The clock a message's metadata describes (anything unusable is ignored)."""
        if not isinstance(metadata, Mapping):
            return cls()
        cycle = metadata.get("hour_cycle")
        return cls(zone=zone_named(metadata.get("timezone")), hour12=not (isinstance(cycle, str) and cycle in _24_HOUR_CYCLES))

    def time(self, when: datetime) -> str:
        """``when`` (an aware datetime) as a time of day: "7:18 PM", "19:18", or "7:18 PM UTC"."""
        local = when.astimezone(self.zone or timezone.utc)
        text = (
            f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
            if self.hour12
            else local.strftime("%H:%M")
        )
        return text if self.zone is not None else f"{text} UTC"
