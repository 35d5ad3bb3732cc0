"""Well-known locations inside the repository, overridable through the environment."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Directory for runtime state (SQLite files, generated token, built spaCy pipeline)."""
    return Path(os.environ.get("BANKFEED_VAR_DIR", REPO_ROOT / "var"))


def spacy_pipeline_dir() -> Path:
    return Path(os.environ.get("BANKFEED_SPACY_DIR", var_dir() / "spacy" / "en_bankfeed"))
