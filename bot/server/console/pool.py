"""A small thread pool with a bounded queue, for slow CPU work that must not crowd out the chats.

Password hashing (scrypt, ~16 MiB and tens of milliseconds per call) runs here instead of in the
event loop's default executor, which every store call, tracker save and upload shares: a sign-in
flood then queues at most ``workers + queue`` hashes and is answered "busy" beyond that, while the
default executor stays free for the message path.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class PoolBusy(Exception):
    """The pool's queue is full: try again shortly."""


class BoundedPool:
    def __init__(self, workers: int = 2, queue: int = 8, name: str = "bounded"):
        if workers < 1 or queue < 0:
            raise ValueError("workers must be at least 1 and queue at least 0.")
        self.workers, self.queue = int(workers), int(queue)
        self.capacity = self.workers + self.queue
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Calls running or waiting."""
        return self._pending

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a pool thread; PoolBusy (at once) when ``capacity`` calls are pending."""
        with self._lock:
            if self._pending >= self.capacity:
                raise PoolBusy()
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
