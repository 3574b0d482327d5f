"""Connections must send a request's headers within FORECASTER_HEADER_TIMEOUT_S, else they are closed.

uvicorn (0.54) has no such deadline: a connection that sends nothing, or half a request line, is
held until the client leaves (the keep-alive timeout only starts after a response, and any byte
cancels it), and the body deadline (service.guard) only starts once the headers are in. 500 such
connections per worker hold 500 file descriptors and buffers for as long as the client likes.

`HeaderDeadlineProtocol` is uvicorn's httptools protocol with one timer per connection, armed
when it opens and after each response, cancelled when a request's headers are complete:
- an idle connection (no byte sent) is closed when it fires;
- a connection with an incomplete request head gets 408 and is closed.
`service.main.serve` runs uvicorn with it (`http=`).

What still needs a reverse proxy (nginx, Envoy, a cloud load balancer) in front:
- a cap on connections per client and on new connections per second: within its deadline one
  client can still open thousands of connections (up to the worker's file-descriptor limit);
- clients that read the response slowly (slow read), and TLS handshakes;
- a header sent in time but very large (uvicorn's parser bounds it only loosely), and HTTP/2.
"""

from __future__ import annotations

import asyncio
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@cache
def header_timeout_s() -> float:
    """Read once per worker: the setting's value, from the same environment as the app's settings."""
    from service.settings import ServiceSettings

    return ServiceSettings().header_timeout_s


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request headers do not arrive in time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0  # bytes received since the deadline was armed

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self.header_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head is due, unless a pipelined one already came in.
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self.header_bytes = 0
        self.header_deadline = self.loop.call_later(header_timeout_s(), self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _header_deadline_passed(self) -> None:
        self.header_deadline = None
        if self.transport.is_closing():
            return
        if self.header_bytes:  # half a request: say why before hanging up
            message = f"request headers not received within {header_timeout_s():g} s"
            self.send_408_response(message)
        else:
            self.transport.close()

    def send_408_response(self, message: str) -> None:
        body = message.encode()
        head = (
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()
