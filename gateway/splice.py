"""Zero-copy relay of a response body from the engine's socket to the client's, on Linux.

A body that passes unchanged does not need to go through Python at all: `os.splice` moves
it from the engine's socket into a pipe and from the pipe into the client's socket inside
the kernel, one call per pipe-full (1 MiB) instead of a read, a bytes object and a write
per chunk. Backpressure stays: the pipe only fills as fast as the client drains it.

Used only where nothing needs to see or change the bytes: plain TCP on both sides, a
body of declared length (no chunked framing to re-encode) of at least SPLICE_MIN_BYTES.
Everything else takes the chunk loop in download.py. The engine connection is closed
afterwards (its HTTP parser never saw the body), so it is worth it only for large bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

import aiohttp
from aiohttp import web

SPLICE_MIN_BYTES = 1 << 20
PIPE_BYTES = 1 << 20
# Linux's fcntl constants, absent from Python's fcntl module before 3.10 on some builds.
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

AVAILABLE = hasattr(os, "splice")


class UpstreamEnded(Exception):
    """The engine closed its connection before the declared length."""


def _socket_fd(transport: asyncio.BaseTransport | None) -> int | None:
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


def eligible(request: web.Request, upstream: aiohttp.ClientResponse, switched_on: bool) -> bool:
    """Whether this response's body can be spliced: see the module's docstring."""
    return (
        "Transfer-Encoding" not in upstream.headers
        and upstream.connection is not None
        and _socket_fd(upstream.connection.transport) is not None
        and large_enough(request, upstream.content_length, switched_on)
    )


def large_enough(request: web.Request, length: int | None, switched_on: bool) -> bool:
    """Whether a body of declared `length` to this client is worth splicing, and can be."""
    return (
        switched_on
        and AVAILABLE
        and request.method != "HEAD"
        and length is not None
        and length >= SPLICE_MIN_BYTES
        and _socket_fd(request.transport) is not None
    )


def client_fd(request: web.Request) -> int | None:
    """The client's socket, when it is plain TCP (no TLS in between)."""
    return _socket_fd(request.transport)


@contextlib.contextmanager
def _pipe() -> Iterator[tuple[int, int, int]]:
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a smaller pipe still works, only slower
            fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
        yield read_end, write_end, fcntl.fcntl(write_end, F_GETPIPE_SZ)
    finally:
        os.close(read_end)
        os.close(write_end)


async def ready(fd: int, *, writable: bool, within: float | None) -> None:
    """Until `fd` is readable (or writable); TimeoutError after `within` seconds."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    (loop.add_writer if writable else loop.add_reader)(fd, _wake, waiter)
    # One timer, not asyncio.wait_for, which wraps the wait in a second future, a task
    # check and a callback: every small call on the relay waits here once.
    timer = None if within is None else loop.call_later(within, _expire, waiter)
    try:
        await waiter
    finally:
        (loop.remove_writer if writable else loop.remove_reader)(fd)
        if timer is not None:
            timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def relay(
    request: web.Request,
    response: web.StreamResponse,
    upstream: aiohttp.ClientResponse,
    count: Callable[[int], None],
    read_timeout: float,
) -> None:
    """Sends the rest of `upstream`'s body to the client, spliced. Raises UpstreamEnded
    or TimeoutError (engine side) or ConnectionResetError (client side) when cut."""
    assert upstream.connection is not None
    assert upstream.content_length is not None
    try:
        # What the HTTP client has already received goes first, as it is; then the
        # engine's socket is left to us: its protocol stops reading (and its read timer,
        # which is ours now). No await between the two, so no byte slips into the client
        # library.
        buffered = upstream.content.read_nowait(-1)
        upstream.connection.protocol.pause_reading()  # type: ignore[union-attr]
        source = _socket_fd(upstream.connection.transport)
        remaining = upstream.content_length - len(buffered)
        await relay_from(request, response, buffered, source, remaining, count, read_timeout)
    finally:
        upstream.close()  # its parser never saw the body: the connection cannot be reused


async def relay_from(
    request: web.Request,
    response: web.StreamResponse,
    buffered: bytes,
    source: int | None,
    remaining: int,
    count: Callable[[int], None],
    read_timeout: float,
) -> None:
    """`buffered`, then `remaining` bytes from the engine's socket `source`, to the
    client. Raises as `relay` does."""
    if buffered:
        await response.write(buffered)
        count(len(buffered))
    await flushed(request)
    sink = _socket_fd(request.transport)
    if source is None:
        raise UpstreamEnded
    if sink is None:
        raise ConnectionResetError("the client's connection is gone")
    await _pump(source, sink, remaining, count, read_timeout)


async def _pump(
    source_fd: int, sink_fd: int, remaining: int, count: Callable[[int], None], read_timeout: float
) -> None:
    """`remaining` bytes from one socket to the other through a pipe, as each side allows."""
    # Duplicates, so the event loop can watch them beside the transports that own the
    # originals.
    source, sink = os.dup(source_fd), os.dup(sink_fd)
    try:
        with _pipe() as (read_end, write_end, capacity):
            in_pipe = 0
            while remaining or in_pipe:
                moved = False
                if remaining and in_pipe < capacity:
                    try:
                        taken = _splice(source, write_end, min(remaining, capacity - in_pipe))
                    except OSError as error:  # the engine reset: not the client leaving
                        raise UpstreamEnded from error
                    if taken == 0:
                        raise UpstreamEnded
                    if taken:
                        remaining -= taken
                        in_pipe += taken
                        moved = True
                if in_pipe:
                    try:
                        given = _splice(read_end, sink, in_pipe)
                    except BrokenPipeError as error:
                        raise ConnectionResetError from error
                    if given:
                        in_pipe -= given
                        count(given)
                        moved = True
                if not moved:
                    if in_pipe:
                        await ready(sink, writable=True, within=None)
                    else:
                        await ready(source, writable=False, within=read_timeout)
    finally:
        os.close(source)
        os.close(sink)


def _splice(source: int, target: int, size: int) -> int | None:
    """Bytes moved, 0 at end of input, None when it would block."""
    try:
        return os.splice(source, target, size, flags=FLAGS)
    except BlockingIOError:
        return None


async def flushed(request: web.Request) -> None:
    """Until what aiohttp has queued for the client (the headers, buffered bytes) is on
    the wire: spliced bytes must come after it."""
    transport = request.transport
    fd = _socket_fd(transport)
    if transport is None or fd is None:
        raise ConnectionResetError("the client's connection is gone")
    watched = os.dup(fd)
    try:
        while transport.get_write_buffer_size():
            await ready(watched, writable=True, within=None)
            await asyncio.sleep(0)  # let the transport's own writer run on this readiness
    finally:
        os.close(watched)
