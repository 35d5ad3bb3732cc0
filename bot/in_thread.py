"""Running a blocking call (a database query, a file read) from async code without stalling the event loop."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker thread; its result (or exception) comes back here."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
