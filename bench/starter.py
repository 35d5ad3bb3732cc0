"""The baseline: a stock ``rasa init`` starter bot (the "moodbot"), trained with the same Rasa.

``ensure_starter()`` creates it under ``var/bench/starter`` with
``rasa init --no-prompt --init-dir var/bench/starter`` (no network needed: the project is copied
from Rasa's package and trained locally) and reuses it when a trained model is already there.

Run on its own: ``python -m bench.starter`` (creates / reuses it and prints the model path).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

from tests import servers

ROOT = servers.ROOT
STARTER_DIR = ROOT / "var" / "bench" / "starter"
INFO_FILE = STARTER_DIR / "bench-starter.json"  # how (and how long) the starter was created
RASA = servers.VENV_BIN / "rasa"

# The moodbot's own happy path (data/stories.yml of the starter): greet, mood_unhappy, affirm, goodbye.
STARTER_SCRIPT = ["hi", "I'm sad", "yes", "bye"]


def training_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Offline and quiet; the training cache disabled so a training run is a full (cold) one."""
    return servers.base_env({"RASA_MAX_CACHE_SIZE": "0", "TF_CPP_MIN_LOG_LEVEL": "2", **(extra or {})})


def starter_model() -> Optional[Path]:
    models = sorted((STARTER_DIR / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def has_custom_actions(project: Path = STARTER_DIR) -> bool:
    """The stock starter ships its action server code commented out (and no action_endpoint)."""
    import yaml

    endpoints = yaml.safe_load((project / "endpoints.yml").read_text()) or {}
    return bool(endpoints.get("action_endpoint"))


def ensure_starter(log: Optional[Path] = None) -> Dict[str, object]:
    """Creates and trains the starter once; returns ``{"model", "created", "init_seconds"}``."""
    model = starter_model()
    if model is not None and (STARTER_DIR / "domain.yml").exists():
        info = json.loads(INFO_FILE.read_text()) if INFO_FILE.exists() else {}
        return {**info, "model": str(model), "created": False}

    if STARTER_DIR.exists():  # a half-made starter from an interrupted run: start over
        shutil.rmtree(STARTER_DIR)
    STARTER_DIR.mkdir(parents=True)  # `rasa init --no-prompt` wants the directory to exist
    log = log or STARTER_DIR.parent / "starter-init.log"
    print(f"[bench] creating the starter bot: rasa init --no-prompt --init-dir {STARTER_DIR.relative_to(ROOT)}", flush=True)
    started = time.perf_counter()
    with open(log, "wb") as out:
        rc = subprocess.run(
            [str(RASA), "init", "--no-prompt", "--init-dir", str(STARTER_DIR)],
            cwd=ROOT,
            env=training_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ).returncode
    seconds = time.perf_counter() - started
    model = starter_model()
    if rc != 0 or model is None:
        raise RuntimeError(f"rasa init failed (exit {rc}); see {log}")
    info = {"init_seconds": round(seconds, 2), "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    INFO_FILE.write_text(json.dumps(info, indent=2))
    return {**info, "model": str(model), "created": True}


def timed_training(
    project: Path, config: str, domain: str, data: str, out: Path, log: Path, extra: Optional[list] = None
) -> Dict[str, object]:
    """A full ``rasa train --force`` (training cache off) into a throw-away ``out`` directory."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    args = [
        str(RASA),
        "train",
        "--force",
        "--config",
        config,
        "--domain",
        domain,
        "--data",
        data,
        "--out",
        str(out),
        "--fixed-model-name",
        "bench",
        *(extra or []),
    ]
    started = time.perf_counter()
    with open(log, "wb") as fh:
        rc = subprocess.run(
            args, cwd=project, env=training_env(), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        ).returncode
    seconds = time.perf_counter() - started
    model = out / "bench.tar.gz"
    result = {"seconds": round(seconds, 2), "ok": rc == 0 and model.exists(), "log": str(log)}
    if result["ok"]:
        result["model_mb"] = round(model.stat().st_size / 1e6, 1)
    shutil.rmtree(out, ignore_errors=True)
    return result


if __name__ == "__main__":
    info = ensure_starter()
    print(json.dumps(info, indent=2))
    sys.exit(0)
