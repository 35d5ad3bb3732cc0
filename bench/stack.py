"""The product as ``make run`` starts it, in a throw-away copy of the tree.

``start_product()`` copies the tracked files (``git ls-files``, as they are in the working tree) into
``var/bench/run-<id>/``, links the trained model (``models/bankfeed.tar.gz``), the spaCy pipeline
(``var/spacy``) and the virtual environment (``.venv``) into it, and runs ``make run`` there with
``RASA_PORT`` / ``ACTIONS_PORT`` on free ports. ``make -o models/bankfeed.tar.gz`` keeps make from
retraining because the copied files are newer than the model (that is the only difference from a
plain ``make run``: the model is the one ``make run`` would use). Whatever ``scripts/run.sh`` starts
(one Rasa process or several behind nginx, the action server) is what is measured, with its own
state (SQLite trackers, hand-off DB, logs, API token) in the copy.

Bench-only settings go in through environment variables the product reads (``bench/README.md``):

* ``RATE_LIMITS=off``: thousands of messages from 127.0.0.1 at machine speed (bot/ratelimit.py);
* ``BANK_DIRECTORY_PATH``: the real bank directory with every online-banking URL on the local fake
  bank site (tests/bank_sites.py), so bank-site checks are real HTTP requests that stay on the machine;
* ``BANKFEED_SETTINGS``: ``bankfeed.yml`` with the connectivity canary on that fake site, the outbound
  allow-list for the fake site's port (``outbound.bank_sites.allow``) and the outage radar's
  thresholds out of reach (scripted "Chase is down" reports must not become a suspected outage and
  change the script's path; the radar's reads and writes still happen). Everything else (probe
  timeouts, reminders) is production's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Sequence

import httpx
import yaml

from tests import servers

ROOT = servers.ROOT
BENCH_VAR = ROOT / "var" / "bench"


def _venv_dir() -> Path:
    """The virtual environment of the running interpreter (``make run`` uses ``.venv``)."""
    return servers.VENV_BIN.parent


def copy_tree(dest: Path) -> Path:
    """The tracked files of the working tree, the model, the spaCy pipeline and the venv (links).
    Earlier runs' copies are removed (the last one stays for its logs: ``var/log/`` in the copy)."""
    for old in dest.parent.glob("run-*"):
        shutil.rmtree(old, ignore_errors=True)
    dest.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if not src.exists() or src.is_dir():  # deleted in the working tree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    (dest / "models").mkdir(exist_ok=True)
    (dest / "var").mkdir(exist_ok=True)
    model = dest / "models" / "bankfeed.tar.gz"
    if model.exists() or model.is_symlink():
        model.unlink()
    model.symlink_to(servers.MODEL.resolve())
    (dest / "var" / "spacy").symlink_to((ROOT / "var" / "spacy").resolve())
    venv = dest / ".venv"
    if not venv.exists():
        venv.symlink_to(_venv_dir())
    return dest


#: the environment variables the bench sets for the product (all read by the product itself)
BENCH_ENV_NAMES = ("BANK_DIRECTORY_PATH", "BANKFEED_SETTINGS", "RATE_LIMITS", "RASA_API_TOKEN", "NO_PROXY")


def write_bench_settings(workdir: Path, site_base_url: str, canary_url: str) -> Dict[str, str]:
    """The bench-only settings files, and the environment variables that point the product at them."""
    directory = servers.write_test_directory(workdir / "bench-banks.yml", site_base_url)
    settings = yaml.safe_load((ROOT / "bankfeed.yml").read_text())
    settings["site_probe"]["canary_urls"] = [canary_url]
    settings["outage_radar"].update(servers.RADAR_OFF)
    settings["outbound"].update(servers.outbound_exceptions([servers.local_allowance(canary_url)]))
    path = workdir / "bench-bankfeed.yml"
    path.write_text(yaml.safe_dump(settings))
    return {"BANK_DIRECTORY_PATH": str(directory), "BANKFEED_SETTINGS": str(path), "RATE_LIMITS": "off"}


def _session_processes(sid: int) -> List[Dict[str, object]]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                raw = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[3]) == sid:
            out.append({"pid": int(pid), "cmd": cmd})
    return out


class RunStack:
    """``make run`` in a throw-away copy; the whole process tree is one session (``sessions``)."""

    name = "product"

    def __init__(self, workdir: Path, url: str, token: str, proc: servers.Process, env: Dict[str, str]):
        self.workdir, self.url, self.token, self.proc, self.env = workdir, url, token, proc, env
        self.processes = {"product": proc}

    @property
    def sessions(self) -> Dict[str, int]:
        return {"product": self.proc.proc.pid}

    def processes_now(self) -> List[Dict[str, object]]:
        return _session_processes(self.proc.proc.pid)

    def pids(self, marker: str) -> List[int]:
        """Pids of the tree's Python processes whose command line holds ``marker``."""
        return [int(p["pid"]) for p in self.processes_now() if marker in str(p["cmd"]) and "python" in str(p["cmd"])]

    def stop(self) -> None:
        # run.sh's own trap stops its servers on SIGINT/SIGTERM; then the whole session, to be sure
        if self.proc.proc.poll() is None:
            try:
                os.kill(self.proc.proc.pid, signal.SIGINT)
                self.proc.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.proc.stop()
        deadline = time.monotonic() + 10
        while self.processes_now() and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in self.processes_now():
            try:
                os.kill(int(p["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_product(site, run_id: str, log: Path, make_args: Sequence[str] = ()) -> RunStack:
    """``make run RASA_PORT=.. ACTIONS_PORT=.. [make_args]`` in ``var/bench/run-<run_id>/``; waits until
    both servers answer and the model is loaded."""
    workdir = copy_tree(BENCH_VAR / f"run-{run_id}")
    rasa_port, action_port = servers.free_port(), servers.free_port()
    token = secrets.token_urlsafe(24)
    # the bench's own environment minus make's and the token file (the token is the bench's own)
    env = {k: v for k, v in os.environ.items() if k not in ("RASA_API_TOKEN_FILE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(write_bench_settings(workdir, site.base_url, site.url("/canary/healthy")))
    env.update({"RASA_API_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost"})
    args = [
        "make",
        "--no-print-directory",
        "-o",
        "models/bankfeed.tar.gz",
        "run",
        f"RASA_PORT={rasa_port}",
        f"ACTIONS_PORT={action_port}",
        *make_args,
    ]
    proc = servers.Process(args, log, env, cwd=workdir)
    url = f"http://127.0.0.1:{rasa_port}"
    try:
        proc.wait_http(f"http://127.0.0.1:{action_port}/health", timeout=120)
        proc.wait_http(f"{url}/", timeout=300)
        # the API behind the token answers too (the model is loaded)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if r.status_code == 200 and r.json().get("model_file"):
                break
            time.sleep(0.5)
    except BaseException:
        stack = RunStack(workdir, url, token, proc, env)
        stack.stop()
        raise
    return RunStack(workdir, url, token, proc, env)
