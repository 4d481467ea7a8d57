"""The streaming core: one request's path from the client to the engine and back.

Read top to bottom, `handle` is the whole data path. Bodies are never held: the request body
is piped to the engine as it arrives, the response body is copied chunk by chunk, and
`await response.write()` waits for the client, so a slow reader slows the engine read
(backpressure) instead of filling memory.

Failure rules (DESIGN.md invariants):
- no answer from the engine → 502/504 in the engine's JSON error shape;
- the engine's body breaks off → the client's connection is aborted, so a short body can
  never look complete (no final chunk, or fewer bytes than Content-Length);
- the client goes away → aiohttp cancels this handler (handler_cancellation), which closes
  the engine connection mid-request, so a half-sent upload is never committed; logged 499.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import errors, headers, routes
from gateway.state import CLIENT, CONFIG

# Measured: large reads and writes keep per-byte work out of Python's loop (DESIGN.md).
CHUNK_BYTES = 256 * 1024

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer

access_log = logging.getLogger("gateway.access")


@dataclass
class Transfer:
    """What one request moved, for its single log line."""

    method: str
    path: str
    route: routes.RouteMatch
    started: float = field(default_factory=time.monotonic)
    status: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    outcome: str = "complete"

    def log(self) -> None:
        access_log.info(
            "method=%s route=%s kind=%s status=%d bytes_up=%d bytes_down=%d "
            "duration_seconds=%.3f outcome=%s path=%s",
            self.method,
            self.route.label,
            self.route.kind.value,
            self.status,
            self.bytes_up,
            self.bytes_down,
            time.monotonic() - self.started,
            self.outcome,
            self.path,
        )


async def handle(request: web.Request) -> web.StreamResponse:
    raw_path = request.rel_url.raw_path
    transfer = Transfer(request.method, raw_path, routes.classify(request.method, raw_path))
    try:
        response = await _proxy(request, transfer)
    except asyncio.CancelledError:
        transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    except ConnectionResetError:
        # The client went away while we wrote to it.
        transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    finally:
        transfer.log()
    return response


async def _proxy(request: web.Request, transfer: Transfer) -> web.StreamResponse:
    config = request.app[CONFIG]

    # 1. Only /engine-rest, and only paths the engine would see as written.
    if routes.resource_path(transfer.path) is None:
        return _refuse(transfer, errors.not_found(transfer.path), "rejected")
    if routes.escapes_api_root(transfer.path):
        error = errors.bad_request(f"Dot segments are not allowed in paths: {transfer.path!r}")
        return _refuse(transfer, error, "rejected")

    # 2. The engine's request: same method, raw path and query; end-to-end headers.
    target = URL(str(config.upstream_origin) + request.rel_url.raw_path_qs, encoded=True)
    outgoing = headers.upstream_request_headers(
        request.headers,
        client_address=request.remote,
        scheme=request.scheme,
        host=request.headers.get("Host"),
    )
    # aiohttp would add its own defaults; what the client didn't send, the engine doesn't get.
    skip = {"User-Agent", "Accept", "Accept-Encoding", "Content-Type"} - set(outgoing)

    # 3. Body up: piped as it arrives.
    body = _request_body(request, transfer) if request.body_exists else None

    try:
        upstream = await request.app[CLIENT].request(
            request.method,
            target,
            headers=outgoing,
            data=body,
            skip_auto_headers=skip,
            allow_redirects=False,
        )
    except aiohttp.ServerTimeoutError as error:
        return _refuse(
            transfer, errors.upstream_timeout(str(error) or type(error).__name__), "timeout"
        )
    except aiohttp.ClientError as error:
        return _refuse(transfer, errors.upstream_unreachable(str(error) or type(error).__name__))

    # 4. Body down: headers first, then chunks with backpressure.
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(headers.downstream_response_headers(upstream.headers))
        transfer.status = upstream.status
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        while True:
            try:
                chunk = await upstream.content.read(CHUNK_BYTES)
            except aiohttp.ServerTimeoutError:
                _abort_client(request, transfer, "timeout")
                return response
            except aiohttp.ClientError:
                _abort_client(request, transfer, "upstream_abort")
                return response
            if not chunk:
                break
            # Raises ConnectionResetError when the client has gone: handled in `handle`.
            await response.write(chunk)
            transfer.bytes_down += len(chunk)
        await response.write_eof()
    return response


async def _request_body(request: web.Request, transfer: Transfer) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        transfer.bytes_up += len(chunk)
        yield chunk


def _refuse(
    transfer: Transfer, error: errors.GatewayError, outcome: str = "upstream_error"
) -> web.Response:
    transfer.status, transfer.outcome = error.status, outcome
    return errors.error_response(error)


def _abort_client(request: web.Request, transfer: Transfer, outcome: str) -> None:
    """Cut the client's connection so the short body is visibly incomplete."""
    transfer.outcome = outcome
    if request.transport is not None:
        request.transport.abort()
