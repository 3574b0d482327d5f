"""What a request must pass before the app reads its body: the API key, a size cap and a deadline.

A pure ASGI middleware, so it runs before routing and before anything buffers the body:
- a protected path without a valid `X-API-Key` gets 401 and its body is never read;
- bytes are counted as they arrive, so a chunked body (no Content-Length) is cut off with 413
  once past the limit, instead of being buffered whole;
- the whole body must arrive within `timeout_s` of the request's start, else 408: a client
  trickling one byte every few seconds cannot hold a worker's connection for minutes.
Rejections close the connection, so the server does not go on reading what the client sends.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException

from service.deps import key_is_valid

CLOSE = {"Connection": "close"}


class RequestGuard:
    def __init__(self, app, max_bytes: int, timeout_s: float, protected_prefix: str = "/v1/"):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        self.protected_prefix = protected_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for name, value in scope["headers"]:  # lower-case names; the first of a repeated header wins,
            headers.setdefault(name, value)  # as in Starlette's `Headers.get`
        if scope["path"].startswith(self.protected_prefix):
            # Keys are set in lifespan; missing means not started: fail closed.
            keys = getattr(scope["app"].state, "api_keys", None)
            if keys is None or not key_is_valid(headers.get(b"x-api-key"), keys):
                return await _reject(
                    send, 401, "missing or invalid X-API-Key", {"WWW-Authenticate": "APIKey"}
                )
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _reject(send, 413, self._too_large(int(length)))
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received, done = 0, False

        async def guarded_receive():
            nonlocal received, done
            if done:  # after the body, receive() only waits for a disconnect: no deadline on that
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"request body not received within {self.timeout_s:g} s", headers=CLOSE
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if received > self.max_bytes:
                    # Raised into whoever reads the body (FastAPI re-raises HTTPException to its handler).
                    detail = f"{self._too_large(None)} (stopped reading at {received} bytes)"
                    raise HTTPException(413, detail, headers=CLOSE)
            else:
                done = True
            return message

        await self.app(scope, guarded_receive, send)

    def _too_large(self, size: int | None) -> str:
        what = "request body" if size is None else f"request body of {size} bytes"
        return f"{what} is over the {self.max_bytes}-byte limit"


async def _reject(send, status: int, detail: str, headers: dict | None = None) -> None:
    """Answer without reading the body; `Connection: close` makes the server drop the rest of it."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in {**(headers or {}), **CLOSE}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
