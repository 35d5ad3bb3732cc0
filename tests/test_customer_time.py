"""Times of day as the customer reads them (bot/customer_time.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.customer_time import CustomerClock, zone_named

EVENING = datetime(2026, 12, 2, 19, 18, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({}, "7:18 PM UTC"),
        (None, "7:18 PM UTC"),
        ({"timezone": "America/Chicago"}, "1:18 PM"),
        ({"timezone": "America/Chicago", "hour_cycle": "h12"}, "1:18 PM"),
        ({"timezone": "Europe/London", "hour_cycle": "h23"}, "19:18"),
        ({"timezone": "Asia/Kolkata"}, "12:48 AM"),  # the next day there: a time of day only
        ({"timezone": "UTC", "hour_cycle": "h23"}, "19:18"),
        ({"hour_cycle": "h23"}, "19:18 UTC"),
    ],
)
def test_the_customers_zone_and_hour_cycle(metadata, expected):
    assert CustomerClock.from_metadata(metadata).time(EVENING) == expected


def test_midnight_and_noon_in_twelve_hours():
    clock = CustomerClock.from_metadata({"timezone": "UTC"})
    assert clock.time(datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)) == "12:05 AM"
    assert clock.time(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)) == "12:00 PM"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/localtime", "Mars/Olympus_Mons", "", " ", "America/Chicago\x00", "A" * 65, 42, ["UTC"], None],
)
def test_anything_but_a_real_zone_name_is_ignored(name):
    assert zone_named(name) is None
    assert CustomerClock.from_metadata({"timezone": name}).time(EVENING) == "7:18 PM UTC"
