"""One request's record, and what both directions do to end it.

`Transfer` is what a request moved, for its log line and its metrics; `refuse` answers with
a gateway-made error, `abort_client` cuts the client's connection so a short body is never
taken for a whole one, and `sent` writes a body that a scan may still refuse. upload.py,
download.py and resolve.py use these as proxy.py does, so they sit one floor below all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import errors, logstream, metrics, relay, routes
from gateway.state import ACCESS_LOG, CUTTING, IN_FLIGHT, METRICS

# Measured: large reads and writes keep per-byte work out of Python's loop (DESIGN.md).
CHUNK_BYTES = 256 * 1024
# Bodies up to this size are read whole and sent with the headers (bench/compare.py).
SMALL_BODY_BYTES = 64 * 1024

# The engine's answer: read by aiohttp's client, or on a download's own connection.
Upstream = aiohttp.ClientResponse | relay.Answer

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer

_STREAMS = {routes.Kind.UPLOAD: "upload", routes.Kind.DOWNLOAD: "download"}


@dataclass
class Transfer:
    """What one request moved, for its log line and its metrics."""

    method: str
    path: str
    route: routes.RouteMatch
    count_up: metrics.Increment  # per-chunk byte counters, labels bound once per request
    count_down: metrics.Increment
    started: float = field(default_factory=time.monotonic)
    first_byte: float | None = None  # when the response's headers went out
    status: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    outcome: str = "complete"
    filename_source: str = "-"  # where a download's name came from (metadata.Naming)
    digest: str = "-"  # sha-256 of the content moved, where it was computed (inspection.py)
    scan: str = "-"  # clamd's verdict: clean, found:<signature>, failed_open, failed_closed
    json_files: int = 0  # File and Bytes values carried in a JSON body (jsonvalues.py)
    json_file_bytes: int = 0  # their decoded size
    offloaded: int = 0  # File and Bytes values put into the document store (offload.py)
    offload_door: str = "-"  # the door they came through: raw, multipart, json
    resolved: str = "-"  # a download served from the store: document, or why not (resolve.py)
    document: str = "-"  # a documents API call: ok, partial:<failed>, or why it was refused
    # Why the gateway cut an upload short (set inside the body stream, read by proxy.py).
    rejection: errors.GatewayError | None = None
    rejection_outcome: str = "rejected"

    def sent_down(self, size: int) -> None:
        """`size` more body bytes went to the client: logged and counted."""
        self.bytes_down += size
        self.count_down(size)

    @property
    def stream(self) -> str | None:
        """The direction of the binary body this request streams, if any."""
        return _STREAMS.get(self.route.kind)

    def log(self, write: logstream.AccessWriter) -> None:
        """The request's access line (its message; `write` adds the time and the rest)."""
        write(
            f"method={self.method} route={self.route.label} kind={self.route.kind.value} "
            f"status={self.status} bytes_up={self.bytes_up} bytes_down={self.bytes_down} "
            f"filename_source={self.filename_source} digest={self.digest} scan={self.scan} "
            f"json_files={self.json_files} json_file_bytes={self.json_file_bytes} "
            f"offloaded={self.offloaded} resolved={self.resolved} document={self.document} "
            f"duration_seconds={time.monotonic() - self.started:.3f} outcome={self.outcome} "
            f"path={self.path}"
        )

    def record(self, counted: metrics.Metrics) -> None:
        size = None
        if self.stream is not None and self.method != "HEAD":
            size = (self.stream, self.bytes_up if self.stream == "upload" else self.bytes_down)
        counted.finished(
            method=self.method,
            route=self.route.label,
            status=self.status,
            outcome=self.outcome,
            duration_seconds=time.monotonic() - self.started,
            first_byte_seconds=None if self.first_byte is None else self.first_byte - self.started,
            size=size,
        )
        if self.offloaded:
            counted.offload(self.offload_door, self.offloaded)
        if self.resolved != "-":
            counted.resolution(self.resolved)
        if self.document != "-":
            counted.document_call(self.route.label, self.document.partition(":")[0])


async def recorded(
    request: web.Request,
    transfer: Transfer,
    answering: Coroutine[Any, Any, web.StreamResponse],
) -> web.StreamResponse:
    """`answering` awaited as one request of the public port: in flight for the drain,
    counted, and logged when it ends, however it ends."""
    counted = request.app[METRICS]
    streams = None if transfer.stream is None else counted.streams.labels(transfer.stream)
    in_flight = request.app[IN_FLIGHT]
    in_flight.started(request.protocol)
    counted.in_flight.inc()
    if streams is not None:
        streams.inc()
    try:
        return await answering
    except asyncio.CancelledError:
        if request.app[CUTTING].is_set():
            # Still running when the drain timeout ran out: cut by the shutdown, and the
            # client's connection closes without a clean end, as for an engine that dies.
            transfer.outcome = "drain_abort"
            transfer.status = transfer.status or errors.shutting_down().status
        else:
            transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    except ConnectionResetError:
        # The client went away while we wrote to it.
        transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    finally:
        in_flight.finished(request.protocol)
        counted.in_flight.dec()
        if streams is not None:
            streams.dec()
        transfer.log(request.app[ACCESS_LOG])
        transfer.record(counted)


def refuse(
    transfer: Transfer, error: errors.GatewayError, outcome: str = "upstream_abort"
) -> web.Response:
    """Answer with a gateway-made error, in the engine's JSON shape."""
    transfer.status, transfer.outcome = error.status, outcome
    transfer.first_byte = time.monotonic()
    return errors.error_response(error)


def abort_client(request: web.Request, transfer: Transfer, outcome: str) -> None:
    """Cut the client's connection so the short body is visibly incomplete."""
    transfer.outcome = outcome
    if request.transport is not None:
        request.transport.abort()


def without_parameters(url: URL, names: frozenset[str] | set[str]) -> URL:
    """`url` without the query parameters the gateway reads for itself."""
    kept = [(k, v) for k, v in url.query.items() if k not in names]
    return url.with_query(kept) if kept else url.with_query(None)


class Watch(Protocol):
    """What watches a body on its way down (inspection.Download, jsonfiles.JsonAnswer)."""

    async def content(self, data: bytes | memoryview) -> errors.GatewayError | None: ...

    async def finish(self) -> errors.GatewayError | None: ...


async def sent(
    request: web.Request,
    response: web.StreamResponse,
    transfer: Transfer,
    pieces: AsyncIterator[bytes],
    watch: Watch | None,
) -> bool:
    """`pieces` to the client as they come, each counted; with a `watch`, the latest piece
    held until the next one, and the last until the watch's verdict. False when the watch
    refused the body: the client's connection is then cut, and never gets its end. What
    `pieces` raises goes on to the caller, before anything held is sent."""
    held = b""
    async for piece in pieces:
        if watch is not None:
            if await watch.content(piece) is not None:
                abort_client(request, transfer, "rejected")
                return False
            piece, held = held, piece
            if not piece:
                continue
        # Raises ConnectionResetError when the client has gone: handled in proxy.handle.
        await response.write(piece)
        transfer.sent_down(len(piece))
    if watch is not None:
        if await watch.finish() is not None:
            # Found, or no verdict and failing closed: the client never gets the end.
            abort_client(request, transfer, "rejected")
            return False
        if held:
            await response.write(held)
            transfer.sent_down(len(held))
    return True
