"""What every chat route checks a request against, built once per server: ``RequestGuards``.

* ``limiter``: the per-client rate limits (``bot.ratelimit.RateLimiter`` from the settings);
* ``session_ids``: issues and verifies the server's conversation ids (``bot.sessions.SessionIds``
  with the chat session secret).

The first of our blueprints to start (REST, socket.io, upload, the hand-off service) installs them on
``app.ctx.guards``; every route then takes the same objects from its request's app. They do not
depend on the product database, so a route keeps checking requests when the database is down. A
misconfigured session secret stops the server as it starts, not at the first message. Tests build
their own (``RequestGuards(limiter, session_ids)``) and install them on their app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.ratelimit import RateLimiter
from bot.sessions import SessionIds, load_secret

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestGuards:
    limiter: RateLimiter
    session_ids: SessionIds

    @classmethod
    def from_settings(cls) -> "RequestGuards":
        limiter = RateLimiter.from_settings()
        logger.info("Rate limits counted in %s.", repr(limiter) if limiter.remote else "this process")
        return cls(limiter=limiter, session_ids=SessionIds(load_secret()))

    @classmethod
    def of(cls, app: Any) -> "RequestGuards":
        """The guards of the server ``app``, built from the settings the first time they are asked for."""
        ctx = app.ctx
        guards = getattr(ctx, "guards", None)
        if guards is None:
            guards = ctx.guards = cls.from_settings()
        return guards

    @classmethod
    def installer(cls, blueprint: Any) -> Any:
        """Builds the guards when ``blueprint``'s server starts (so a bad secret stops the start)."""

        async def install(app: Any, _loop: Any) -> None:
            cls.of(app)

        blueprint.listener("before_server_start")(install)
        return blueprint
