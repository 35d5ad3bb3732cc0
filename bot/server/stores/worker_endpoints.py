"""Writes the endpoints file for ``make run WORKERS=2``: the embedded endpoints plus our Redis lock store.

Rasa only starts more than one Sanic worker with a lock store all workers share (one conversation is
processed by one worker at a time); conversations stay in the embedded SQLite database (WAL mode lets
the workers read and write it side by side).

    python -m bot.server.stores.worker_endpoints endpoints.yml var/endpoints.workers.yml
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import yaml

LOCK_STORE_TYPE = "bot.server.stores.lock_store.ResilientRedisLockStore"


def lock_store_from_env(env: Mapping[str, str]) -> dict:
    return {
        "type": LOCK_STORE_TYPE,
        "url": env.get("REDIS_HOST") or "127.0.0.1",
        "port": int(env.get("REDIS_PORT") or 6379),
        "db": int(env.get("REDIS_LOCK_DB") or 1),
        "password": env.get("REDIS_PASSWORD") or None,
    }


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
    endpoints = worker_endpoints(yaml.safe_load(source.read_text()), os.environ)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f"# Generated from {source} by bot.server.stores.worker_endpoints for WORKERS>1; do not edit.\n"
        + yaml.safe_dump(endpoints, sort_keys=False)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
