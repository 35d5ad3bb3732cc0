"""Public status JSON for status pages and alerting: ``GET /status/outages``.

Only bank names, counts and times: nothing about any user or conversation.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import UserMessage
from sanic import Blueprint, response
from sanic.request import Request

from bot.server.channels.routes import RoutesChannel
from bot.server.services import Services


class StatusInput(RoutesChannel):
    prefix = "/status"

    @classmethod
    def name(cls) -> str:
        return "status"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("status")

        Services.attach(bp)

        @bp.route("/outages", methods=["GET"])
        async def outages(request: Request) -> Any:
            services = request.app.ctx.services
            status = await services.run(services.radar.status)
            return response.json(status, headers={"Cache-Control": "max-age=30", "Access-Control-Allow-Origin": "*"})

        return bp
