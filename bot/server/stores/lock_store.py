"""A Redis lock store that keeps the bot answering when Redis is unavailable.

Rasa's RedisLockStore raises on every message while Redis is down: every user would get no answer.
This one falls back to in-process locks (logged loudly, re-checking Redis every few seconds). The
trade-off while Redis is down: two replicas could each take a message of the same conversation at
the same instant (sticky sessions make that rare); everything is still stored, nothing is lost.

endpoints.prod.yml: ``lock_store: {type: bot.server.stores.lock_store.ResilientRedisLockStore, url: ..., port: ...}``
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Text

from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, RedisLockStore

logger = logging.getLogger(__name__)

RETRY_REDIS_AFTER_SECONDS = 5.0


class ResilientRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # created from endpoints.yml by module path
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
            kwargs.pop("type", None)
        kwargs.setdefault("socket_timeout", 2)
        super().__init__(**kwargs)
        self._fallback = InMemoryLockStore()
        self._redis_down_until = 0.0

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._redis_down_until

    def _call(self, method: str, *args: Any) -> Any:
        import redis

        if not self.using_fallback:
            try:
                return getattr(RedisLockStore, method)(self, *args)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                logger.error(
                    "Redis lock store unavailable (%s): using in-process locks for %ss. Conversations keep "
                    "working; across replicas, one conversation's messages are not serialised meanwhile.",
                    exc,
                    RETRY_REDIS_AFTER_SECONDS,
                )
                self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS
        return getattr(self._fallback, method)(*args)

    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        return self._call("get_lock", conversation_id)

    def delete_lock(self, conversation_id: Text) -> None:
        self._call("delete_lock", conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        self._call("save_lock", lock)
