"""Loads the product settings file (``bankfeed.yml``, or the file named by ``BANKFEED_SETTINGS``)."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Dict

import yaml

from bot.banks.site_prober import ProbeSettings
from bot.outbound import OutboundPolicy

#: What each caller of the outbound policy is called in the ``outbound`` settings.
OUTBOUND_USES = ("bank_sites", "slack", "teams")

REPO_ROOT = Path(__file__).resolve().parent.parent


def settings_path() -> Path:
    return Path(os.environ.get("BANKFEED_SETTINGS", REPO_ROOT / "bankfeed.yml"))


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_settings() -> Dict[str, Any]:
    return _load(str(settings_path()))


def probe_settings() -> ProbeSettings:
    settings = ProbeSettings.from_mapping(load_settings().get("site_probe") or {})
    return dataclasses.replace(settings, outbound=outbound_policy("bank_sites"))


def outbound_policy(use: str) -> OutboundPolicy:
    """The outbound policy (bot/outbound.py) for one use: the ``outbound`` section's keys, overridden by
    its ``<use>`` subsection (e.g. ``outbound: {max_bytes: ..., teams: {allow: [...]}}``). Without the
    section: the defaults (public addresses on ports 80/443 only)."""
    if use not in OUTBOUND_USES:
        raise ValueError(f"unknown outbound use {use!r}; known: {', '.join(OUTBOUND_USES)}")
    section = load_settings().get("outbound") or {}
    if not isinstance(section, dict):
        raise ValueError("the 'outbound' settings must be a mapping")
    base = {k: v for k, v in section.items() if k not in OUTBOUND_USES}
    override = section.get(use) or {}
    if not isinstance(override, dict):
        raise ValueError(f"the 'outbound.{use}' settings must be a mapping")
    return OutboundPolicy.from_mapping({**base, **override})


def radar_settings() -> Any:
    """The outage radar's settings (``bot.outages.radar.RadarSettings``)."""
    from bot.outages.radar import RadarSettings

    return RadarSettings.from_mapping(load_settings().get("outage_radar") or {})


def reminder_settings() -> Any:
    """When a "wait a day" reminder is due (``bot.outages.reminders.ReminderSettings``)."""
    from bot.outages.reminders import ReminderSettings

    return ReminderSettings.from_mapping(load_settings().get("reminders") or {})
