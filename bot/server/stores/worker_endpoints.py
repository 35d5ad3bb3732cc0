"""Writes the endpoints file for ``make run WORKERS=2``: the embedded endpoints plus a lock store all
workers share.

Rasa only starts more than one Sanic worker with a lock store all workers share (one conversation is
processed by one worker at a time); conversations stay in the embedded SQLite database (WAL mode lets
the workers read and write it side by side). Which lock store (``LOCK_STORE``):

* ``file`` (default): ``bot.server.stores.file_lock_store.FileLockStore``, OS file locks on
  ``LOCK_FILE`` (default ``<var dir>/locks/conversations.lock``): every process on this machine, no Redis;
* ``redis``: ``bot.server.stores.lock_store.ResilientRedisLockStore`` on ``REDIS_HOST`` (127.0.0.1),
  ``REDIS_PORT`` (6379), ``REDIS_LOCK_DB`` (1), ``REDIS_PASSWORD``: for processes on several machines.

A lock store already configured in the source endpoints is kept as it is.

    python -m bot.server.stores.worker_endpoints endpoints.yml var/endpoints.workers.yml
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import yaml

FILE_LOCK_STORE_TYPE = "bot.server.stores.file_lock_store.FileLockStore"
REDIS_LOCK_STORE_TYPE = "bot.server.stores.lock_store.ResilientRedisLockStore"
LOCK_STORES = ("file", "redis")


def lock_store_from_env(env: Mapping[str, str]) -> dict:
    kind = (env.get("LOCK_STORE") or "file").strip().lower()
    if kind == "file":
        store = {"type": FILE_LOCK_STORE_TYPE}
        if (env.get("LOCK_FILE") or "").strip():
            store["path"] = env["LOCK_FILE"].strip()
        return store
    if kind == "redis":
        return {
            "type": REDIS_LOCK_STORE_TYPE,
            "url": env.get("REDIS_HOST") or "127.0.0.1",
            "port": int(env.get("REDIS_PORT") or 6379),
            "db": int(env.get("REDIS_LOCK_DB") or 1),
            "password": env.get("REDIS_PASSWORD") or None,
        }
    raise ValueError(f"LOCK_STORE must be one of {', '.join(LOCK_STORES)}, not {kind!r}")


def worker_endpoints(base: dict, env: Mapping[str, str]) -> dict:
    endpoints = dict(base or {})
    if not endpoints.get("lock_store"):  # an explicitly configured lock store is kept
        endpoints["lock_store"] = lock_store_from_env(env)
    return endpoints


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    source, target = Path(args[0]), Path(args[1])
    try:
        endpoints = worker_endpoints(yaml.safe_load(source.read_text()), os.environ)
    except ValueError as exc:
        print(f"worker_endpoints: {exc}", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f"# Generated from {source} by bot.server.stores.worker_endpoints for WORKERS>1; do not edit.\n"
        + yaml.safe_dump(endpoints, sort_keys=False)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
