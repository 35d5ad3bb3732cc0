"""Starts Rasa (``python -m bot.server.serve run --model ... --enable-api``) without the API token on the command line.

``rasa run --auth-token=<token>`` puts the token in ``/proc/<pid>/cmdline``, visible to every local
user (``ps``) and to anything that records process lists. This launcher takes every ``rasa``
argument except the token, reads the token from ``RASA_API_TOKEN`` or the file ``RASA_API_TOKEN_FILE``
(see ``bot.server.api_token``), and runs Rasa's own command-line entry point in this process with
``--auth-token`` added to ``sys.argv`` only (the kernel's copy of the command line is not changed).

Before Rasa starts, in this order: the start-up warning filters (``bot.server.quiet_start``), the log
scrubbing (``bot.log_masking``) and the patches of Rasa internals (``bot.server.rasa_patches``). Every
way this project starts a Rasa server goes through here (scripts/run.sh, scripts/prod-up.sh, the
images in deploy/, the tests' servers): importing our channels or components changes nothing.

``--enable-api`` without a token is refused: Rasa's HTTP API would be open to anyone.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

from bot import log_masking
from bot.server import api_token, quiet_start, rasa_patches


def rasa_argv(args: Sequence[str], token: Optional[str]) -> List[str]:
    """The ``sys.argv`` Rasa gets; ValueError for arguments this launcher does not take."""
    args = list(args)
    for arg in args:
        if arg == "--auth-token" or arg.startswith("--auth-token="):
            raise ValueError("Do not pass --auth-token: set RASA_API_TOKEN or RASA_API_TOKEN_FILE instead.")
        if arg == "--cors" or arg.startswith("--cors="):
            raise ValueError(
                "Do not pass --cors: list the widget's sites in CHAT_ALLOWED_ORIGINS (see bot/server/channels/cors.py)."
            )
    if "--enable-api" in args and not token:
        raise ValueError("--enable-api needs a token: set RASA_API_TOKEN or RASA_API_TOKEN_FILE.")
    return ["rasa", *args] + ([f"--auth-token={token}"] if token else [])


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        token = api_token.read_token()
        new_argv = rasa_argv(args, token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api_token.set_current(token)
    quiet_start.install()
    log_masking.install()
    rasa_patches.apply_all()
    quiet_start.keep_in_front_of_rasa()
    sys.argv = new_argv
    from rasa.__main__ import main as rasa_main

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
