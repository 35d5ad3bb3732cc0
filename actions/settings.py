"""Loads the product settings file (``bankfeed.yml``, or the file named by ``BANKFEED_SETTINGS``)."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Dict

import yaml

from actions.site_prober import ProbeSettings

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
    return ProbeSettings.from_mapping(load_settings().get("site_probe") or {})


def radar_settings() -> Any:
    """The outage radar's settings (``bot.outages.radar.RadarSettings``)."""
    from bot.outages.radar import RadarSettings

    return RadarSettings.from_mapping(load_settings().get("outage_radar") or {})
