"""Starts the real product processes for tests: the action server and the Rasa server, on free ports.

Bank sites are played by a local ``FakeBankSite``: the test bank directory is the real one with every
online-banking URL pointed at it (``/<bank-slug>/<mode>``), so nothing leaves the machine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Dict, Iterable, List, Optional
from urllib.parse import urlsplit

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODEL = ROOT / "models" / "bankfeed.tar.gz"

# Banks whose fake site misbehaves in the test directory; every other bank is healthy.
SITE_MODES = {"Barclays": "maintenance", "American Express": "error500", "Capital One": "hang"}


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_test_directory(path: Path, site_base_url: str, modes: Optional[Dict[str, str]] = None) -> Path:
    """The real bank directory with each bank's URL on the local fake site."""
    modes = {**SITE_MODES, **(modes or {})}
    data = yaml.safe_load((ROOT / "data" / "banks.yml").read_text())
    for bank in data["bank_directory"]:
        bank["online_banking_url"] = f"{site_base_url}/{slug(bank['name'])}/{modes.get(bank['name'], 'healthy')}"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# The shared test stack must not see an "outage" just because many tests report the same bank;
# the outage-radar tests start their own stack with real thresholds.
RADAR_OFF = {"min_reports": 1_000_000, "min_probe_failures": 1_000_000, "min_verified_reports": 1_000_000}


def local_allowance(url: str) -> str:
    """The outbound-policy exception for one local server: ``127.0.0.1:<its port>``."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def outbound_exceptions(bank_sites: Iterable[str]) -> Dict[str, object]:
    """The test stack's explicit exceptions to the outbound policy (production allows none): bank-site
    checks may reach the local fake bank site's port only (so a customer typing any other local address
    is still refused), Slack and Teams their local fakes on 127.0.0.1 (any port: the fakes pick theirs)."""
    return {"bank_sites": {"allow": list(bank_sites)}, "slack": {"allow": ["127.0.0.1"]}, "teams": {"allow": ["127.0.0.1"]}}


#: "Check back tomorrow" comes after two seconds in test stacks (tests poll for it).
REMINDERS_SOON = {"delay_hours": 2 / 3600, "interval_seconds": 0.5}


def write_test_settings(
    path: Path,
    canary_url: str,
    radar: Optional[Dict[str, object]] = None,
    outbound: Optional[Dict[str, object]] = None,
    **probe: object,
) -> Path:
    """The product settings for a test stack. The fake bank site (whose canary is ``canary_url``) is allowed
    explicitly in ``outbound.bank_sites``; ``outbound`` replaces those exceptions (``{}``: the defaults)."""
    settings = yaml.safe_load((ROOT / "bankfeed.yml").read_text())
    settings["site_probe"].update(
        {"canary_urls": [canary_url], "budget": 2.0, "connect_timeout": 1.0, "read_timeout": 1.5, **probe}
    )
    settings["outage_radar"].update(RADAR_OFF if radar is None else radar)
    settings["outbound"].update(outbound_exceptions([local_allowance(canary_url)]) if outbound is None else outbound)
    settings["reminders"].update(REMINDERS_SOON)
    path.write_text(yaml.safe_dump(settings))
    return path


def base_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # Test stacks send thousands of messages from 127.0.0.1 at machine speed: per-client rate
            # limits off, like the radar above; tests/test_abuse.py starts its stacks with them on.
            "RATE_LIMITS": "off",
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "PYTHONHASHSEED": "0",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(extra or {})
    return env


class Process:
    """A child process with its output in a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, args: Iterable[str], log: Path, env: Dict[str, str], cwd: Path = ROOT):
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            self.args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_http(self, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[:3]} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{url} not up after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


def start_action_server(port: int, log: Path, env: Dict[str, str]) -> Process:
    """The action server as the scripts start it (``python -m bot.server.action_server``: loopback, and the shared
    secret when ``ACTION_SERVER_TOKEN`` is in ``env``)."""
    proc = Process(
        [str(VENV_BIN / "python"), "-m", "bot.server.action_server", "--actions", "actions", "--port", str(port)], log, env
    )
    proc.wait_http(f"http://127.0.0.1:{port}/health")
    return proc


def write_endpoints(
    path: Path,
    action_port: int,
    tracker_db: Path,
    tracker_store: Optional[Dict[str, object]] = None,
    lock_store: Optional[Dict[str, object]] = None,
) -> Path:
    # the action endpoint as endpoints.yml sets it (enable_selective_domain ...), on the test's port
    shipped = yaml.safe_load((ROOT / "endpoints.yml").read_text())["action_endpoint"]
    endpoints: Dict[str, object] = {
        "action_endpoint": {**shipped, "url": f"http://127.0.0.1:{action_port}/webhook"},
        "tracker_store": tracker_store
        or {
            "type": "bot.server.stores.tracker_store.RedactingSQLTrackerStore",
            "dialect": "sqlite",
            "db": str(tracker_db),
        },
    }
    if lock_store:
        endpoints["lock_store"] = lock_store
    path.write_text(yaml.safe_dump(endpoints))
    return path


def start_rasa_server(
    port: int, endpoints: Path, token: str, log: Path, env: Dict[str, str], credentials: Path = ROOT / "credentials.yml"
) -> Process:
    """``python -m bot.server.serve run ...`` as the scripts start it: the API token in the environment
    (RASA_API_TOKEN), never on the command line."""
    args = [
        str(VENV_BIN / "python"),
        "-m",
        "bot.server.serve",
        "run",
        "--model",
        str(MODEL),
        "--endpoints",
        str(endpoints),
        "--credentials",
        str(credentials),
        "--port",
        str(port),
        "--enable-api",
    ]
    env = {**env, "RASA_API_TOKEN": token}
    env.pop("RASA_API_TOKEN_FILE", None)
    proc = Process(args, log, env)
    proc.wait_http(f"http://127.0.0.1:{port}/", timeout=180)
    return proc


def widget_session(url: str) -> str:
    """A widget session id, issued over socketio (and used once, so it has history)."""
    import socketio

    client = socketio.Client(reconnection=False)
    confirmed: List[str] = []
    answered = threading.Event()
    client.on("session_confirm", lambda sid: confirmed.append(sid))
    client.on("bot_uttered", lambda data: answered.set())
    client.connect(url, transports=["polling"], wait_timeout=10)
    try:
        client.emit("session_request", {})
        deadline = time.monotonic() + 10
        while not confirmed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert confirmed, "no session_confirm"
        session = confirmed[0]
        client.emit("user_uttered", {"session_id": session, "message": "hello"})
        answered.wait(30)
        return session
    finally:
        client.disconnect()
