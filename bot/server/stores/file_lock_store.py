"""A lock store for several Rasa processes on one machine, on OS file locks (no Redis).

Rasa processes one conversation's messages one at a time through its lock store
(``async with lock_store.lock(conversation_id)`` in ``Agent.handle_message``, the reminders, the HTTP
API; our hand-off service too). Its in-memory store only serialises inside one process, so Rasa refuses
``SANIC_WORKERS`` > 1 with it; its Redis store needs a Redis. This one serialises a conversation across
every process on this machine that opens the same lock file:

* **Cross-process**: a POSIX record lock (``fcntl`` ``F_SETLK``, write lock) on one byte of the lock
  file, at the offset of the conversation's *stripe*: a stable hash (BLAKE2b, the same in every
  process, unlike ``hash()``) of the conversation id, modulo ``stripes`` (default 2**32, so two
  conversations in flight share a byte, and wait for each other, with a chance of about one in four
  billion). Locks beyond the end of the file are allowed: the file stays empty.
* **In-process**: POSIX record locks belong to a *process* (a second lock by the same process on the
  same byte succeeds at once, and one unlock drops it for the whole process), so each process also
  holds an ``asyncio.Lock`` per stripe (first come, first served): at most one coroutine of a process
  holds or asks for a stripe's byte.
* **The event loop is never blocked**: the byte is asked for with non-blocking attempts, with short
  ``asyncio.sleep`` pauses between them (2 ms, doubling up to 50 ms or Rasa's ``wait_time_in_seconds``
  if smaller).
* **A process that dies releases its locks**: the kernel drops a process's record locks when it exits,
  however it exits (``kill -9`` included), so a crashed worker never leaves a conversation locked; there
  are no tickets to expire.
* **Waiting as Rasa's stores do**: a message waits at most ``lock_lifetime`` (Rasa's
  ``TICKET_LOCK_LIFETIME``, default 60 s) for its conversation and then gets Rasa's ``LockError``,
  like a ticket of Rasa's stores that expires while it waits. Unlike them, a holder that runs longer
  than the lifetime keeps the lock (it is never overtaken by the next message: no two messages of a
  conversation are ever processed at once); the next message waits for it or gets ``LockError``.
* **Order**: inside a process, waiters get the conversation in the order they asked; between processes
  there is no queue (whoever tries first after the release gets it). One conversation's messages
  normally reach one process (the widget's socket stays on one worker; REST clients wait for each
  reply), so this matters only for messages of one conversation sent at the same instant.

The lock file is created with mode 0600 (another account could otherwise hold a read lock on its bytes
and stall our conversations). The process keeps one descriptor on it for its lifetime: closing *any*
descriptor of the file drops all of the process's locks on it (POSIX), so nothing else in the process
may open the lock file. Rasa 3.6.21 only calls ``lock()`` on a lock store (``tests/test_file_lock_store.py``
checks its source); the ticket methods of Rasa's polling algorithm (``get_lock``, ``save_lock``, ...)
are not used by this store and refuse to be called.

endpoints.yml (``bot.server.stores.worker_endpoints`` writes it for ``WORKERS`` > 1)::

    lock_store:
      type: bot.server.stores.file_lock_store.FileLockStore
      path: var/locks/conversations.lock   # default: <var dir>/locks/conversations.lock (bot.paths)
      stripes: 4294967296                  # optional
      key_prefix: bot1                     # optional: stores with different prefixes never wait for each other

Rasa accepts it for several Sanic workers without a patch: ``rasa.core.utils.number_of_sanic_workers``
accepts every lock store configured in endpoints.yml whose type is not ``in_memory``.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncGenerator, Dict, Optional, Text, Tuple, Union

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore

from bot import paths

logger = logging.getLogger(__name__)

DEFAULT_STRIPES = 1 << 32
MAX_STRIPES = 1 << 62  # offsets stay well inside a signed 64-bit off_t
FIRST_PAUSE = 0.002
LONGEST_PAUSE = 0.05
CONFIG_KEYS = {"path", "stripes", "key_prefix"}
_BUSY = (errno.EACCES, errno.EAGAIN)


def default_path() -> Path:
    return paths.var_dir() / "locks" / "conversations.lock"


class _Stripe:
    """One process's claim on one stripe: the coroutine holding it and those waiting for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _LockFile:
    """This process's descriptor on one lock file and its in-process stripe locks.

    Shared by every FileLockStore of the process on the same file (two descriptors would not exclude
    each other, POSIX locks being per process) and never closed (closing it would drop the locks)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.stripes: Dict[int, _Stripe] = {}

    def claim(self, stripe: int) -> _Stripe:
        claim = self.stripes.get(stripe)
        if claim is None:
            claim = self.stripes[stripe] = _Stripe()
        claim.users += 1
        return claim

    def unclaim(self, stripe: int, claim: _Stripe) -> None:
        claim.users -= 1
        if claim.users == 0 and self.stripes.get(stripe) is claim:
            del self.stripes[stripe]

    def try_lock(self, stripe: int) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in _BUSY:
                return False
            raise
        return True

    def unlock(self, stripe: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, stripe, os.SEEK_SET)


_files: Dict[Tuple[int, str], _LockFile] = {}
_files_lock = threading.Lock()


def _lock_file(path: Path) -> _LockFile:
    # keyed by process too: a forked child must not use its parent's in-process state
    key = (os.getpid(), os.path.realpath(path))
    with _files_lock:
        shared = _files.get(key)
        if shared is None:
            shared = _files[key] = _LockFile(Path(key[1]))
        return shared


def _waited_too_long(conversation_id: Text) -> LockError:
    logger.warning(
        "Conversation %s: a message waited its lock lifetime for the one being processed and is not processed.",
        conversation_id,
    )
    return LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")


class FileLockStore(LockStore):
    """Serialises one conversation's messages across the processes of one machine (see the module)."""

    def __init__(
        self,
        path: Union[str, Path, None] = None,
        stripes: int = DEFAULT_STRIPES,
        key_prefix: Optional[str] = None,
        endpoint_config: Any = None,
    ) -> None:
        if endpoint_config is not None:  # created from endpoints.yml by module path
            options = {k: v for k, v in (endpoint_config.kwargs or {}).items() if k != "type"}
            unknown = set(options) - CONFIG_KEYS | ({"url"} if endpoint_config.url else set())
            if unknown:
                raise ValueError(
                    f"FileLockStore: unknown lock_store settings {', '.join(sorted(unknown))} (known: {', '.join(sorted(CONFIG_KEYS))})"
                )
            path = options.get("path", path)
            stripes = options.get("stripes", stripes)
            key_prefix = options.get("key_prefix", key_prefix)
        if path is not None and (not isinstance(path, (str, Path)) or not str(path).strip()):
            raise ValueError(f"FileLockStore: path must be a file name, not {path!r}")
        if isinstance(stripes, bool) or not isinstance(stripes, int) or not 1 <= stripes <= MAX_STRIPES:
            raise ValueError(f"FileLockStore: stripes must be a whole number from 1 to 2**62, not {stripes!r}")
        if key_prefix is not None and not isinstance(key_prefix, str):
            raise ValueError(f"FileLockStore: key_prefix must be text, not {key_prefix!r}")
        self.path = Path(os.path.abspath(path if path is not None else default_path()))
        self.stripes = stripes
        self.key_prefix = key_prefix or ""
        super().__init__()
        self._pid, self._file = os.getpid(), _lock_file(self.path)  # opened now: a bad path fails at start

    def _shared(self) -> _LockFile:
        if self._pid != os.getpid():  # forked: the child's own descriptor and in-process state
            self._pid, self._file = os.getpid(), _lock_file(self.path)
        return self._file

    def __repr__(self) -> str:
        return f"FileLockStore({str(self.path)!r})"

    def stripe_of(self, conversation_id: Text) -> int:
        """The byte of the lock file that stands for ``conversation_id`` (the same in every process)."""
        name = f"{self.key_prefix}:{conversation_id}".encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") % self.stripes

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        """Holds ``conversation_id`` for the ``async with`` block; LockError after ``lock_lifetime`` s of waiting."""
        deadline = time.monotonic() + lock_lifetime
        stripe = self.stripe_of(conversation_id)
        shared = self._shared()
        claim = shared.claim(stripe)
        try:
            await self._acquire_in_process(claim, deadline, conversation_id)
            try:
                await self._acquire_file(shared, stripe, deadline, wait_time_in_seconds, conversation_id)
                try:
                    ticket_lock = TicketLock(conversation_id)  # what Rasa's stores yield; nobody reads it
                    ticket_lock.issue_ticket(lock_lifetime)
                    yield ticket_lock
                finally:
                    shared.unlock(stripe)
            finally:
                claim.lock.release()
        finally:
            shared.unclaim(stripe, claim)

    @staticmethod
    async def _acquire_in_process(claim: _Stripe, deadline: float, conversation_id: Text) -> None:
        if not claim.lock.locked():
            await claim.lock.acquire()  # free: taken without suspending
            return
        try:
            await asyncio.wait_for(claim.lock.acquire(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise _waited_too_long(conversation_id) from None

    @staticmethod
    async def _acquire_file(
        shared: _LockFile, stripe: int, deadline: float, wait_time_in_seconds: float, conversation_id: Text
    ) -> None:
        pause, longest = FIRST_PAUSE, max(0.001, min(LONGEST_PAUSE, wait_time_in_seconds))
        while True:
            try:
                if shared.try_lock(stripe):
                    return
            except OSError as exc:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}': {exc}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise _waited_too_long(conversation_id)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, longest)

    # Rasa's ticket algorithm (LockStore.lock's default) stores tickets through these; this store
    # keeps no tickets, and Rasa 3.6.21 calls none of them.
    def _no_tickets(self, *_: Any) -> Any:
        raise NotImplementedError("FileLockStore keeps no tickets: use `async with lock_store.lock(conversation_id)`.")

    get_lock = delete_lock = save_lock = issue_ticket = _no_tickets
