"""Starts the Rasa SDK action server on a chosen interface, accepting only requests with a shared secret.

    python -m bot.server.action_server --actions actions --port 5055 [--interface 127.0.0.1]

It is ``rasa run actions`` (the same Sanic app, arguments and logging, built by rasa_sdk) with two
differences:

* **where it listens**: ``--interface``, else ``ACTION_SERVER_INTERFACE``, else ``127.0.0.1``.
  (``rasa run actions`` has no such option and listens on every interface, ``0.0.0.0``.)
* **who may call it**: when ``ACTION_SERVER_TOKEN`` is set, every request except ``GET /health`` must
  carry it in the ``X-Action-Server-Token`` header (compared in constant time); others are answered
  401 and never run. Rasa sends the header from ``action_endpoint.headers`` in endpoints.prod.yml.
  Listening beyond loopback without a token is refused at start (set ``ACTION_SERVER_ALLOW_OPEN=1``
  to accept it knowingly, e.g. behind a NetworkPolicy that already admits only the Rasa pods).

The check is attached through rasa_sdk's own extension hook (``attach_sanic_app_extensions``).
Before rasa_sdk is imported, the start-up warning filters (``bot.server.quiet_start``) and the log
scrubbing (``bot.log_masking``) are installed: a secret a user pasted never reaches this server's logs.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import sys
from typing import Any, List, Mapping, Optional

import pluggy

from bot import log_masking
from bot.server import quiet_start

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Action-Server-Token"
DEFAULT_INTERFACE = "127.0.0.1"
MIN_TOKEN_CHARS = 16
OPEN_PATHS = ("/health",)

hookimpl = pluggy.HookimplMarker("rasa_sdk")


def is_loopback(interface: str) -> bool:
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def check_config(interface: str, token: str, env: Mapping[str, str]) -> Optional[str]:
    """Why this configuration must not start, or None."""
    if token and len(token) < MIN_TOKEN_CHARS:
        return f"ACTION_SERVER_TOKEN is too short: use at least {MIN_TOKEN_CHARS} random characters."
    if not token and not is_loopback(interface) and env.get("ACTION_SERVER_ALLOW_OPEN", "") != "1":
        return (
            f"Refusing to listen on {interface} without ACTION_SERVER_TOKEN: anyone who reaches the port "
            "could run actions. Set the token (and the same one in Rasa's endpoints), or "
            "ACTION_SERVER_ALLOW_OPEN=1 if the network already admits only the Rasa server."
        )
    return None


class SharedSecret:
    """rasa_sdk plugin: a request middleware that answers 401 unless the shared secret is presented."""

    def __init__(self, token: str):
        self.token = token.encode("utf-8")

    def allowed(self, presented: Optional[str]) -> bool:
        return bool(presented) and hmac.compare_digest(self.token, presented.encode("utf-8", "replace"))

    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        from sanic import response

        async def require_secret(request: Any) -> Any:
            if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
                return None
            if self.allowed(request.headers.get(TOKEN_HEADER)):
                return None
            return response.json({"error": f"Missing or wrong {TOKEN_HEADER} header."}, status=401)

        app.register_middleware(require_secret, "request")


def main(argv: Optional[List[str]] = None, env: Optional[Mapping[str, str]] = None) -> None:
    quiet_start.install()
    log_masking.install()
    from rasa_sdk.__main__ import main_from_args
    from rasa_sdk.endpoint import create_argument_parser
    from rasa_sdk.plugin import plugin_manager

    env = os.environ if env is None else env
    parser = create_argument_parser()
    parser.add_argument(
        "--interface", default=None, help=f"address to listen on (default: ACTION_SERVER_INTERFACE or {DEFAULT_INTERFACE})"
    )
    args = parser.parse_args(argv)
    interface = args.interface or env.get("ACTION_SERVER_INTERFACE") or DEFAULT_INTERFACE
    token = (env.get("ACTION_SERVER_TOKEN") or "").strip()
    problem = check_config(interface, token, env)
    if problem:
        print(f"action server: {problem}", file=sys.stderr)
        raise SystemExit(2)
    os.environ["SANIC_HOST"] = interface  # rasa_sdk.endpoint.run listens where SANIC_HOST says
    if token:
        plugin_manager().register(SharedSecret(token), "bankfeed-shared-secret")
    main_from_args(args)


if __name__ == "__main__":
    main()
