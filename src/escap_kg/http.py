"""The HTTP/1.1 server layer: uvicorn's httptools protocol, upgrades ignored, reads timed."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import struct
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("escap_kg.http")

#: Seconds a client has to send a whole request head, and to send more of a request body.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
#: Connections served at once; past them a request is answered 503.
MAX_CONNECTIONS = 1000

# Hop-by-hop headers of an upgrade request, dropped when the upgrade is ignored.
_UPGRADE_HEADERS = {b"upgrade", b"http2-settings"}


def _timeout_response(status: int, message: str) -> bytes:
    body = message.encode("ascii") + b"\n"
    return (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii") + body


#: The ASGI scope extension through which the application drops a connection without flushing.
ABORT = "escap_kg.abort"
#: The ASGI scope extension that tells how many bytes of the response the client has taken
#: (acknowledged by its TCP stack), or None where the system cannot say.
DELIVERED = "escap_kg.delivered"
#: Where ``tcpi_bytes_acked`` sits in Linux's ``struct tcp_info`` (since Linux 4.1).
_TCPI_BYTES_ACKED = 120


class EndpointProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, for an endpoint that speaks HTTP/1.1 only.

    - Every ``Upgrade`` request (``h2c`` from Java's HttpClient and Apache Jena, ``websocket``)
      is served as the plain HTTP/1.1 request it also is, body included, as RFC 9110 section 7.8
      allows. httptools skips the body of any upgrade request, so uvicorn answered such a POST as
      if it had no body: the head is parsed again without its upgrade headers instead.
    - A request head must arrive whole within :attr:`header_timeout` seconds of the connection
      opening or of its first byte, and a request body must not pause for longer than
      :attr:`body_timeout` seconds; past either the connection is answered 408 and closed.

    Configure with :meth:`configured`; pass the class to ``uvicorn.run(http=...)``.
    """

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT

    @classmethod
    def configured(cls, header_timeout: float, body_timeout: float) -> type[EndpointProtocol]:
        """This protocol with these read timeouts, in seconds."""
        return type(
            cls.__name__,
            (cls,),
            {"header_timeout": header_timeout, "body_timeout": body_timeout},
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._reading_body = False
        self._upgrade_ignored = False
        self._reparsing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the clock for the first request head."""
        super().connection_made(transport)  # type: ignore[arg-type]
        self._read_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the read clock with the connection."""
        self._stop_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; re-parse an upgrade request without its upgrade headers."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._serve_without_upgrade(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError:
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        # Timers are only armed for a head or body split across reads, the rare case.
        if self._reading_head:
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        elif self._reading_body:
            self._stop_read_timer()
            self._read_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)
        elif self._read_timer is not None:
            self._stop_read_timer()

    def on_message_begin(self) -> None:
        """A request head begins."""
        super().on_message_begin()
        self._reading_head = True

    def on_headers_complete(self) -> None:
        """Hand the request to the application, unless it asks for an upgrade."""
        self._reading_head = False
        if self.parser.should_upgrade():
            # httptools skips the body and stops the parser: see _serve_without_upgrade.
            self._upgrade_ignored = True
            return
        self._reading_body = True
        # The application may drop a connection at once (an answer cut off half way): close()
        # would first send all that is buffered, at the pace of the slowest reader.
        extensions: dict[str, Any] = dict(self.scope.get("extensions") or {})
        extensions[ABORT] = self._drop
        extensions[DELIVERED] = self._delivered
        self.scope["extensions"] = extensions
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        """The request body ended."""
        self._reading_body = False
        if self._upgrade_ignored:
            return
        super().on_message_complete()

    def _serve_without_upgrade(self, rest: bytes) -> None:
        self._upgrade_ignored = False
        method = self.parser.get_method()
        if method == b"CONNECT" or self._reparsing:
            self.send_400_response("CONNECT and protocol switches are not supported.")
            return
        head = [method, b" ", self.url, b" HTTP/", self.parser.get_http_version().encode(), b"\r\n"]
        for name, value in self.headers:
            if name in _UPGRADE_HEADERS:
                continue
            if name == b"connection":
                kept = [
                    token.strip()
                    for token in value.split(b",")
                    if token.strip().lower() not in (b"upgrade", b"http2-settings")
                ]
                if not kept:
                    continue
                value = b", ".join(kept)
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        # A head that still asks for an upgrade once re-parsed is refused, not looped over.
        self._reparsing = True
        try:
            self.data_received(b"".join(head) + rest)
        finally:
            self._reparsing = False

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _head_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading_head:
            log.info(
                "%s: request head not received within %g s; closed",
                self._peer(),
                self.header_timeout,
            )
            # Not while an earlier request of the connection is still being answered.
            if self.cycle is None or self.cycle.response_complete:
                message = f"request head not received within {self.header_timeout:g} s"
                self.transport.write(_timeout_response(408, message))
            self.transport.close()
        elif self.cycle is None:
            # A connection that never sent a byte gets no answer.
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or not self._reading_body:
            return
        log.info(
            "%s: no request body received for %g s; closed%s",
            self._peer(),
            self.body_timeout,
            "" if self.cycle.response_started else " with 408",
        )
        if not self.cycle.response_started:
            self.transport.write(
                _timeout_response(408, f"no request body received for {self.body_timeout:g} s")
            )
        self.transport.close()

    def _drop(self) -> None:
        """Close the connection now with a reset: what the kernel still holds for the client is
        thrown away rather than delivered at the client's pace."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _delivered(self) -> int | None:
        """Bytes the client's TCP stack has acknowledged: it grows while the client reads.

        What the server has written can sit in the kernel's send buffer (megabytes on a fast
        link) long after the application handed it over, so a write that waits says nothing
        about whether the client still reads; the acknowledged count does.
        """
        sock = self.transport.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        except (OSError, AttributeError, TypeError):
            return None
        if len(info) < _TCPI_BYTES_ACKED + 8:
            return None
        acked: int = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0]
        return acked

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "-"


class _HeadWithBody:
    """The connection as one response's writer sees it: the response head is held until the
    body's first bytes, and both leave in one write (one system call and one TCP segment for a
    small answer, where uvicorn makes two). A head with no body after it in the same turn of
    the event loop (a ``HEAD``, a pause for flow control) leaves at the end of that turn."""

    __slots__ = ("head", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        #: The head, until it is written; b"" once it has been.
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        """The first write (the head) is held; the next goes out with it."""
        head = self.head
        if head is None:
            self.head = data
            self.loop.call_soon(self.flush)
        elif head:
            self.head = b""
            self.transport.writelines((head, data))
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Write the head if it is still held."""
        head = self.head
        if head:
            self.head = b""
            if not self.transport.is_closing():
                self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()
