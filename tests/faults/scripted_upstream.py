"""SCRIPTED STUB UPSTREAM for fault injection: not an engine.

Raw bytes on a socket, for the faults an HTTP library will not produce: a Content-Length
that lies, header bytes HTTP forbids, a reset instead of an answer. Each request for
anything but `/engine-rest/engine` (the gateway's readiness watch, answered normally) is
answered by the next script in turn, whatever connection it arrives on.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum

from tests.processes import LOOPBACK

ENGINE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


class Then(Enum):
    HOLD = "hold"  # keep the connection open, answer nothing more on it
    KEEP = "keep"  # keep the connection open, answer the next request on it with the next script
    CLOSE = "close"  # FIN
    RESET = "reset"  # RST (SO_LINGER 0)


@dataclass(frozen=True)
class Script:
    answer: bytes
    then: Then = Then.HOLD


@dataclass
class ScriptedUpstream:
    scripts: list[Script]
    url: str = ""
    answered: int = 0
    # For each script answered, the connection it went out on (0, 1, ... in order of arrival).
    connections: list[int] = field(default_factory=list)
    # Scripted connections the gateway closed itself (EOF while held).
    closed_by_gateway: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


async def _serve(
    upstream: ScriptedUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    upstream.writers.append(writer)
    connection = len(upstream.writers) - 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /engine-rest/engine "):
                writer.write(ENGINE_ANSWER)
                continue
            script = upstream.scripts[min(upstream.answered, len(upstream.scripts) - 1)]
            upstream.answered += 1
            upstream.connections.append(connection)
            writer.write(script.answer)
            await writer.drain()
            if script.then is Then.RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if script.then is Then.CLOSE:
                writer.close()
                return
            if script.then is Then.KEEP:
                continue
            await reader.read()  # HOLD: whatever comes next goes unanswered, until EOF
            upstream.closed_by_gateway.set()
            return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


@asynccontextmanager
async def serving(*scripts: Script) -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(list(scripts))
    server = await asyncio.start_server(lambda r, w: _serve(upstream, r, w), LOOPBACK, 0)
    upstream.url = f"http://{LOOPBACK}:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()
        for writer in upstream.writers:
            writer.transport.abort()
        await server.wait_closed()


def answer(head: str, body: bytes = b"") -> bytes:
    """A response from a head written with `\\n` line ends, sent with CRLF."""
    return head.strip("\n").replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body
