"""What the back-online notifier and the "wait a day" reminder sender share: a round of work run
every few seconds, and the claim-then-deliver step that sends each notice or reminder exactly once,
whatever the number of server replicas.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(interval: float, round_: Callable[[], Awaitable[Any]], what: str) -> None:
    """Runs ``round_`` every ``interval`` seconds until cancelled; a failed round is logged (``what``
    names it) and the next one comes anyway."""
    while True:
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s round failed; trying again later.", what)
        await asyncio.sleep(interval)


async def claim_then_deliver(claim: Callable[[], bool], deliver: Callable[[], Awaitable[None]], what: str) -> bool:
    """Delivers one notice or reminder if this caller wins its ``claim`` (a blocking database update,
    run in a thread: only one replica wins it); True when it was delivered. A delivery that fails is
    logged, not retried: the row is marked sent, so a REST client still collects it with its next poll."""
    if not await asyncio.to_thread(claim):
        return False  # another replica has it
    try:
        await deliver()
        return True
    except Exception:
        logger.exception("Could not deliver %s (kept for the customer's next poll).", what)
        return False
