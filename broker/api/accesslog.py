"""Request log as plain ASGI middleware (``BaseHTTPMiddleware`` costs a task and a stream copy per request).

Each line names the route template (``/v1/me/receipts/{receipt_id}``), never the concrete path, so ids in
URLs stay out of the log; no query strings, headers or bodies.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.logs import event

log = logging.getLogger("broker.http")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")  # Starlette's router writes the matched route into the shared scope
            event(log, "request", method=scope["method"], route=getattr(route, "path", "unmatched"),
                  status=status, ms=round((time.perf_counter() - started) * 1000, 1))
