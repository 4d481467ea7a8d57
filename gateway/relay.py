"""The gateway's own connection to the engine for bodyless GETs and HEADs, whose answer
goes to the client as the engine framed it.

Why not aiohttp's client here: its parser decodes the engine's chunked framing as it reads
and hands the body over a chunk at a time (Operaton sends its downloads in 8 KiB chunks),
which download.py then had to frame again for the client: Python calls for every 8 KiB,
and a framing nobody asked for. Here the engine's bytes come into one buffer
(RELAY_BUFFER_BYTES), llhttp (httptools, the C parser uvicorn uses) walks them to know
where the body ends and whether its framing holds, and the same bytes go to the client
unchanged: per buffer one receive, one parse in C and one send, and chunk sizes,
extensions and trailers as the engine wrote them. A chunked body that ends within the
head's buffer (HEAD_LIMIT_BYTES; Tomcat sends any answer over its 8 KiB output buffer
chunked, a task query's twenty tasks too) is read whole first and goes out with the head
in one write through aiohttp (read_framed): no second handle on the client's socket, and
a failure before its end is a clean 502 or 504. A body of declared length is counted
instead, and spliced when large (splice.py). For a small call the same path is also the
cheaper one (bench/engine_cases.py: `--relay off` against on).

httptools does not say where in a buffer an answer ended, so the ends are placed here:
- the head ends at its first CRLF CRLF (llhttp refuses a bare LF, so it can end nowhere
  else) and is fed alone;
- a declared body ends after its length, counted;
- a chunked body ends where llhttp's message completes; when more follows in the same
  buffer (an answer nobody asked for), the end cannot be placed, so the client's
  connection is cut, as for broken framing: a short body never looks whole, and the
  engine's surplus never reaches another request.
llhttp is strict where aiohttp's client is lenient: a control character in a header (DEL)
makes the answer invalid (502), as RFC 9110 says it is.

Used for bodyless GET and HEAD requests (binary downloads and calls passed through) that
nothing watches (no clamd on downloads, no Want-Repr-Digest) from HTTP/1.1 clients, with
`--relay on`; requests with a body, and watched answers, keep aiohttp's client.
Connections are kept alive in a pool of idle ones, each checked before reuse (a
connection with bytes or an end waiting is dropped); a request that finds a reused
connection closed before any answer byte is sent once more on a new one, as aiohttp and
nginx do for idempotent requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import mmap
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import errors, splice

RELAY_BUFFER_BYTES = 1 << 20
HEAD_LIMIT_BYTES = 64 * 1024  # aiohttp's client takes 8 KiB a line; the whole head here
IDLE_CONNECTIONS = 32  # kept per process; more at once are opened and closed as needed
SPARE_BODIES = 4  # body buffers kept for the next downloads
HEAD_END = b"\r\n\r\n"
CLIENT_GONE = "the client's connection is gone"

Buffer = bytearray | mmap.mmap


class Framing(enum.Enum):
    NONE = "none"  # HEAD, 1xx, 204, 304: no body whatever the head says
    LENGTH = "length"
    CHUNKED = "chunked"
    EOF = "eof"  # neither: the body runs to the engine's close


class EngineError(Exception):
    """No usable answer: the error for the client, its outcome, and whether the engine
    could not be connected to at all."""

    def __init__(
        self, error: errors.GatewayError, outcome: str = "upstream_abort", unreachable: bool = False
    ) -> None:
        super().__init__(error.message)
        self.error, self.outcome, self.unreachable = error, outcome, unreachable


class Ended(Exception):
    """The engine's body broke off: closed, reset, or framed wrongly."""


@dataclass
class Pool:
    """Idle connections to the engine, and the way to a new one."""

    host: str
    port: int
    connect_timeout: float
    read_timeout: float
    limit: int = 100  # connections at once, as --upstream-connections bounds aiohttp's
    idle: list[socket.socket] = field(default_factory=list)
    in_use: int = 0
    slots: asyncio.Semaphore | None = None  # made in the running loop, on first use
    # Buffers of answers that ended, for the next ones, by size: a head's (every answer),
    # and a body's, taken only when a body is relayed, so that a small call holds 64 KiB,
    # not 1 MiB. A fresh 1 MiB is a fresh mapping, faulted in page by page, which had
    # cost a small call more than all the rest of it.
    spare: dict[int, list[Buffer]] = field(default_factory=dict)

    def buffer(self, size: int) -> Buffer:
        kept = self.spare.get(size)
        if kept:
            return kept.pop()
        # A body's buffer is mapped on its own pages: the kernel copies a received piece
        # into a page-aligned buffer much faster than into a bytearray's (which starts 16
        # bytes into its page). On this machine's AMD EPYC, the copy took 45% of a relayed
        # download's CPU samples into a bytearray and 12% into a mapping (perf).
        return mmap.mmap(-1, size) if size > HEAD_LIMIT_BYTES else bytearray(size)

    def buffer_back(self, buffer: Buffer) -> None:
        kept = self.spare.setdefault(len(buffer), [])
        if len(kept) < (IDLE_CONNECTIONS if len(buffer) <= HEAD_LIMIT_BYTES else SPARE_BODIES):
            kept.append(buffer)

    async def hold(self) -> None:
        """One of `limit` slots, waited for as aiohttp's connector waits for a connection."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.limit)
        await self.slots.acquire()
        self.in_use += 1

    def let_go(self) -> None:
        assert self.slots is not None
        self.in_use -= 1
        self.slots.release()

    def close(self) -> None:
        for sock in self.idle:
            sock.close()
        self.idle.clear()

    def taken(self) -> socket.socket | None:
        """An idle connection that is still quiet (nothing waiting, not closed), if any."""
        while self.idle:
            sock = self.idle.pop()
            try:
                waiting = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return sock
            except OSError:
                waiting = b""
            del waiting  # an end, or bytes nobody asked for: not reusable either way
            sock.close()
        return None

    def give_back(self, sock: socket.socket) -> None:
        if len(self.idle) < IDLE_CONNECTIONS:
            self.idle.append(sock)
        else:
            sock.close()

    async def connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                found = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                failure: OSError = OSError(f"no address for {self.host}")
                for family, kind, proto, _, address in found:
                    sock = socket.socket(family, kind, proto)
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    try:
                        await _connected(sock, address)
                        return sock
                    except OSError as error:
                        sock.close()
                        failure = error
                    except BaseException:
                        sock.close()
                        raise
                raise failure
        except TimeoutError as error:
            detail = f"connection timeout to {self.host}:{self.port}"
            raise EngineError(errors.upstream_timeout(detail), "timeout") from error
        except OSError as error:
            detail = f"cannot connect to {self.host}:{self.port}: {error.strerror or error}"
            raise EngineError(errors.upstream_unreachable(detail), unreachable=True) from error


class _Events:
    """What llhttp reports, collected for Answer."""

    def __init__(self) -> None:
        self.reason = b""
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.begun = 0
        self.head_done = False
        self.complete = False

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_message_complete(self) -> None:
        self.complete = True


def request_head(method: str, path_qs: str, headers: CIMultiDict[str], host: str) -> bytes:
    """The request line and headers, each as aiohttp's server read it from the client."""
    lines = [f"{method} {path_qs} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {host}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def ask(pool: Pool, method: str, path_qs: str, headers: CIMultiDict[str]) -> Answer:
    """Sends a bodyless request and reads the answer's head. Raises EngineError."""
    head = request_head(method, path_qs, headers, f"{pool.host}:{pool.port}")
    await pool.hold()
    try:
        reused = pool.taken()
        while True:
            sock = reused or await pool.connect()
            answer = Answer(pool, sock, method)
            try:
                await answer.send(head)
                await answer.read_head()
                answer.holds_slot = True  # let go of when the answer closes
                return answer
            except _ClosedBeforeAnswer as closed:
                answer.close()
                if reused is None:
                    detail = str(closed.__cause__ or "the engine closed the connection")
                    raise EngineError(errors.upstream_unreachable(detail)) from closed
                reused = None  # a kept-alive connection the engine had closed: anew
            except BaseException:
                answer.close()
                raise
    except BaseException:
        pool.let_go()
        raise


class _ClosedBeforeAnswer(Exception):
    pass


class Answer:
    """The engine's answer on one connection: its head, and its body to be relayed."""

    def __init__(self, pool: Pool, sock: socket.socket, method: str) -> None:
        self._pool, self._method = pool, method
        self._sock: socket.socket | None = sock
        self._buffer = pool.buffer(HEAD_LIMIT_BYTES)
        self._view = memoryview(self._buffer)
        self._wide = False  # a body is relayed: received RELAY_BUFFER_BYTES at a time
        self.holds_slot = False  # one of the pool's slots, from ask
        self._pending = self._view[:0]  # body bytes received with the head, not yet relayed
        self._pending_watched = False  # and already fed to the parser (read_framed)
        self._received = 0  # bytes in the head's buffer
        self._events = _Events()
        self._parser = httptools.HttpResponseParser(self._events)
        self._remaining = 0  # of a declared body
        self._reusable = False
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        self.content_length: int | None = None
        self.framing = Framing.NONE

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        self.close()

    @property
    def complete(self) -> bool:
        return self._events.complete

    def close(self) -> None:
        """Back to the pool when the answer was read exactly to its end, else closed."""
        if self.holds_slot:
            self.holds_slot = False
            self._pool.let_go()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._pending = self._view = memoryview(b"")
        self._pool.buffer_back(self._buffer)
        if self._reusable and self.complete:
            self._pool.give_back(sock)
        else:
            sock.close()

    async def send(self, head: bytes) -> None:
        try:
            await _sent(self._socket, head)
        except OSError as error:
            raise _ClosedBeforeAnswer from error

    @property
    def _socket(self) -> socket.socket:
        assert self._sock is not None, "the answer is closed"
        return self._sock

    async def _receive(self, into: memoryview) -> int:
        """Bytes received into `into`, as soon as there are any; TimeoutError after the
        read timeout without."""
        sock = self._socket
        while True:
            try:
                return sock.recv_into(into)
            except BlockingIOError:
                await splice.ready(sock.fileno(), writable=False, within=self._pool.read_timeout)

    def _widened(self) -> None:
        """A body is relayed: the head's buffer (nothing pending in it) swapped for a body's."""
        if self._wide and len(self._buffer) < RELAY_BUFFER_BYTES:
            self._pool.buffer_back(self._buffer)
            self._buffer = self._pool.buffer(RELAY_BUFFER_BYTES)
            self._view = memoryview(self._buffer)

    async def _receive_body(self) -> int:
        """Bytes received into the buffer. Raises TimeoutError, or Ended when the engine
        reset the connection."""
        self._widened()
        return await self._received_into(self._view)

    async def _received_into(self, into: memoryview) -> int:
        """Body bytes received into `into`. Raises TimeoutError, or Ended when the engine
        reset the connection."""
        try:
            return await self._receive(into)
        except TimeoutError:
            raise  # an OSError too, but the engine's silence, not its end
        except OSError as error:
            self._reusable = False
            raise Ended from error

    async def read_head(self) -> None:
        """Reads and parses the head (skipping 1xx interim answers); what came after it is
        kept for the body. Raises EngineError."""
        filled = searched = 0  # received, and looked through for the head's end
        while True:
            end = self._buffer.find(HEAD_END, max(0, searched - 3), filled)
            searched = filled
            if end < 0:
                if filled >= HEAD_LIMIT_BYTES:
                    raise EngineError(errors.upstream_invalid("Header overflow"))
                try:
                    taken = await self._receive(self._view[filled:HEAD_LIMIT_BYTES])
                except TimeoutError as error:
                    detail = "no answer within the read timeout"
                    raise EngineError(errors.upstream_timeout(detail), "timeout") from error
                except OSError as error:
                    raise _ClosedBeforeAnswer from error
                if not taken:
                    if filled == 0:
                        raise _ClosedBeforeAnswer
                    raise EngineError(errors.upstream_unreachable("the answer broke off"))
                filled += taken
                continue
            end += len(HEAD_END)
            try:
                self._parser.feed_data(self._view[:end])
            except httptools.HttpParserError as error:
                raise EngineError(errors.upstream_invalid(str(error))) from error
            status = self._parser.get_status_code()
            if 100 <= status < 200 and status != 101:  # interim: the answer follows
                self._buffer[: filled - end] = self._view[end:filled]
                filled -= end
                searched = 0
                self._events = _Events()
                self._parser = httptools.HttpResponseParser(self._events)
                continue
            self._pending, self._received = self._view[end:filled], filled
            self._begin(status)
            return

    def _begin(self, status: int) -> None:
        events = self._events
        self.status, self.reason = status, events.reason.decode("latin-1")
        self.headers = CIMultiDictProxy(events.headers)
        self._reusable = bool(self._parser.should_keep_alive())
        coding = self.headers.get("Transfer-Encoding")
        length = self.headers.get("Content-Length")
        if self._method == "HEAD" or status < 200 or status in (204, 304):
            self.framing = Framing.NONE
            events.complete = True
            self._reusable = self._reusable and not self._pending
        elif coding is not None:
            if coding.strip().lower() != "chunked":
                # Another coding inside the chunks: the client could not be told it.
                raise EngineError(errors.upstream_invalid("Unsupported Transfer-Encoding"))
            self.framing = Framing.CHUNKED
        elif length is not None:
            self.framing = Framing.LENGTH
            self.content_length = self._remaining = int(length)  # llhttp checked it
            events.complete = self._remaining == 0
        else:
            self.framing = Framing.EOF
            self._reusable = False

    async def read(self) -> bytes:
        """A declared body whole (download.py asks only for small ones). Raises Ended,
        TimeoutError."""
        if self.framing is Framing.NONE:
            return b""
        assert self.framing is Framing.LENGTH
        pieces = []
        while not self.complete:
            pieces.append(bytes(self._watched(await self._next())))
        return b"".join(pieces)

    async def read_framed(self) -> memoryview | None:
        """A chunked body whole, as the engine framed it, if it ends within the head's
        buffer: a small answer then goes out with its head in one write, as one of declared
        length does, not through relay(). None if it runs on: what was received stays
        pending, for relay(). Raises Ended, TimeoutError."""
        assert self.framing is Framing.CHUNKED
        start = self._received - len(self._pending)
        self._watched(self._pending)
        self._pending_watched = True
        while not self.complete and self._received < len(self._buffer):
            taken = await self._received_into(self._view[self._received :])
            if not taken:
                raise Ended
            self._watched(self._view[self._received : self._received + taken])
            self._received += taken
        self._pending = self._view[start : self._received]
        if not self.complete:
            return None
        body, self._pending = self._pending, self._view[:0]
        return body

    async def read_some(self) -> bytes:
        """The next piece of a body that runs to the engine's close; b"" at its end."""
        assert self.framing is Framing.EOF
        self._wide = True
        if self._pending:
            piece, self._pending = bytes(self._pending), self._view[:0]
            return piece
        taken = await self._receive_body()
        return bytes(self._view[:taken])

    async def _next(self) -> memoryview:
        """The next received bytes of the body: those that came with the head first."""
        if self._pending:
            piece, self._pending = self._pending, self._view[:0]
            return piece
        taken = await self._receive_body()
        if not taken:
            raise Ended
        return self._view[:taken]

    def _watched(self, piece: memoryview) -> memoryview:
        """`piece`, up to the body's end, once its framing has been checked."""
        if self.framing is Framing.LENGTH:
            if len(piece) >= self._remaining:
                # Bytes past the declared end: an answer nobody asked for, never relayed.
                self._reusable = self._reusable and len(piece) == self._remaining
                piece = piece[: self._remaining]
                self._events.complete = True
            self._remaining -= len(piece)
            return piece
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserError as error:
            self._reusable = False
            raise Ended from error
        if self._events.begun > 1:
            self._reusable = False
            raise Ended  # the end cannot be placed: see the module's docstring
        return piece

    async def relay(self, sink: socket.socket, count: Callable[[int], None]) -> None:
        """The body, framing and all, to `sink` (the client's socket, the answer's head
        already on the wire). Raises Ended or TimeoutError (the engine's side), and
        ConnectionResetError (the client's).

        One flat loop that awaits only when a socket makes it wait. A piece is what the
        engine wrote while the last one was sent, 80 to 100 KB of a 200 MB download here,
        so the Python calls around each piece are a good part of the download's CPU once
        the page-aligned buffer (Pool.buffer) makes the kernel's copy cheap."""
        self._wide = True
        if self._pending:
            piece = self._pending if self._pending_watched else self._watched(self._pending)
            await _passed_on(sink, piece, count)
            self._pending = self._view[:0]
        self._widened()
        sock, view, events = self._socket, self._view, self._events
        while not events.complete:
            try:
                taken = sock.recv_into(view)
            except BlockingIOError:
                await splice.ready(sock.fileno(), writable=False, within=self._pool.read_timeout)
                continue
            except OSError as error:
                self._reusable = False
                raise Ended from error
            if not taken:
                raise Ended
            piece = self._watched(view[:taken])
            sent = _sent_now(sink, piece)
            if sent < len(piece):  # the client's buffer is full: wait for it
                await _passed_on(sink, piece[sent:], count)
            count(sent)

    def splice_source(self) -> tuple[bytes, int, int]:
        """For splice.py: what came with the head, the engine's socket, and how many bytes
        of the declared body remain after those; `spliced` once they have all moved."""
        assert self.framing is Framing.LENGTH
        buffered = bytes(self._watched(self._pending))
        self._pending = self._view[:0]
        return buffered, self._socket.fileno(), self._remaining

    def spliced(self) -> None:
        self._remaining = 0
        self._events.complete = True


# asyncio's sock_* calls are not used: when one is cancelled (the client left), it takes
# its descriptor off the event loop a turn later, by number, after the socket here may
# have been closed and the number given to another connection. splice.ready takes it off
# before it returns.


async def _connected(sock: socket.socket, address: Any) -> None:
    error = sock.connect_ex(address)
    if error in (errno.EINPROGRESS, errno.EWOULDBLOCK):
        await splice.ready(sock.fileno(), writable=True, within=None)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


def _sent_now(sink: socket.socket, piece: memoryview) -> int:
    """How much of `piece` the client's socket takes without waiting; ConnectionResetError
    when the client is gone."""
    try:
        return sink.send(piece)
    except BlockingIOError:
        return 0
    except OSError as error:
        raise ConnectionResetError(CLIENT_GONE) from error


async def _passed_on(sink: socket.socket, piece: memoryview, count: Callable[[int], None]) -> None:
    """All of `piece` to the client, counted; ConnectionResetError when it is gone."""
    try:
        await _sent(sink, piece)
    except OSError as error:
        raise ConnectionResetError(CLIENT_GONE) from error
    count(len(piece))


async def _sent(sock: socket.socket, data: bytes | memoryview) -> None:
    """All of `data` into the socket, waiting while it is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await splice.ready(sock.fileno(), writable=True, within=None)


@contextlib.contextmanager
def duplicate(fd: int) -> Iterator[socket.socket]:
    """A socket object on a duplicate of `fd` (the client's socket, owned by aiohttp's
    transport): asyncio's sock_* calls refuse a descriptor a transport owns."""
    sock = socket.socket(fileno=socket.dup(fd))
    try:
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()
