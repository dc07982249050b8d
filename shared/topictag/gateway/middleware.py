"""Plain ASGI middleware of the gateway: request ids, the request body limit, latency metrics.

Plain ASGI (not Starlette's BaseHTTPMiddleware) so each costs one function call per request
and none of them copies the body or wraps the response in a stream.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from topictag import metrics

REQUEST_ID_HEADER = "x-request-id"
# A caller's own id is kept only if it is short and plain: it goes into logs and headers.
_CALLER_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        + (headers or []),
    })
    await send({"type": "http.response.body", "body": data})


class RequestId:
    """Gives every request an id (the caller's X-Request-ID if plain, else a new one), keeps it
    in ``scope["state"]`` for handlers and logs, and returns it as X-Request-ID."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get(REQUEST_ID_HEADER)
        rid = given if given and _CALLER_ID.match(given) else uuid.uuid4().hex
        # The state dict is shared with the outermost error handler, which reports the id on a 500.
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before the app reads them.

    A declared Content-Length over the limit is refused at once, unread. A chunked body (no
    length up front) is read here up to the limit and then handed on; one byte more and it
    is refused. The HTTP server already stops a body at its declared Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, send: Send) -> Awaitable[None]:
        detail = f"request body is over the {self.max_bytes}-byte limit ({_size(self.max_bytes)})"
        return send_json(send, 413, {"detail": detail, "limit_bytes": self.max_bytes})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isascii() or not length.isdigit():
                return await send_json(send, 400, {"detail": "Content-Length is not a number"})
            if int(length) > self.max_bytes:
                return await self._too_large(send)
            return await self.app(scope, receive, send)
        if "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)  # no body at all
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ObserveLatency:
    """Request latency by method, route template (not raw path: ids would explode the
    label set) and status, for /metrics."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # stays so if the app raises before it answers

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            metrics.HTTP_REQUEST_SECONDS.labels(
                scope["method"], getattr(route, "path", "unmatched"), str(status)
            ).observe(time.perf_counter() - started)
