"""STUB UPSTREAM for fault injection: not an engine.

A small aiohttp app at the engine's URL prefix that misbehaves on purpose (dies mid-body,
stalls, holds a body until a test releases it) and records what reached it. Tests that
claim engine behaviour use the real engine (tests/integration), never this.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

CHUNK = b"x" * 65536


@dataclass
class StubState:
    """What the stub saw; events let a test wait for a condition instead of sleeping."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    first_bytes_seen: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = ""
    received_bytes: int = 0
    received_sha256: str = ""  # of the last body the sink took
    sent_bytes: int = 0  # of the current /stream response, as written to the socket
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    paths: list[str] = field(default_factory=list)  # every request's raw path and query
    lookup_headers: list[dict[str, str]] = field(default_factory=list)


STATE = web.AppKey("state", StubState)


def _state(request: web.Request) -> StubState:
    state = request.app[STATE]
    state.requests += 1
    state.request_headers = list(request.headers.items())
    state.paths.append(request.raw_path)
    return state


async def engine(request: web.Request) -> web.Response:
    # Not recorded: the gateway's readiness watch asks this every few seconds on its own.
    return web.json_response([{"name": "default"}])


async def headers(request: web.Request) -> web.Response:
    _state(request)
    return web.json_response({"headers": list(request.headers.items())})


FILES = web.AppKey("files", Path)


async def file_or_stream(request: web.Request) -> web.StreamResponse:
    """A download: with a files directory (STUB_FILES), instance `file` serves the file
    named like the variable, by sendfile as nginx would, named by Content-Disposition;
    anything else is `stream`."""
    files = request.app.get(FILES)
    if files is None or request.match_info["id"] != "file":
        return await stream(request)
    name = request.match_info["name"]
    return web.FileResponse(
        files / name,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{name}.bin"',
        },
    )


async def stream(request: web.Request) -> web.StreamResponse:
    """`size` bytes; `gate` holds back everything after the first chunk until released;
    `die_after` cuts the connection after that many bytes; `stall_after` stops sending."""
    state = _state(request)
    size = int(request.query.get("size", "262144"))
    die_after = int(request.query.get("die_after", "-1"))
    stall_after = int(request.query.get("stall_after", "-1"))
    response = web.StreamResponse()
    response.content_type = "application/octet-stream"
    if request.query.get("length", "declared") == "declared":
        response.content_length = size
    await response.prepare(request)
    sent = 0
    try:
        while sent < size:
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            await response.write(piece)
            sent += len(piece)
            state.sent_bytes = sent
            if sent == die_after and request.transport is not None:
                request.transport.abort()
                state.outcome = "died"
                return response
            if sent == stall_after:
                await asyncio.Event().wait()
            if "gate" in request.query and sent == len(CHUNK):
                await state.release.wait()
        await response.write_eof()
        state.outcome = "complete"
    except BaseException:  # connection lost, reset, or handler cancelled: all "cut"
        state.outcome = "cancelled"
        raise
    finally:
        state.ended.set()
    return response


async def stall(request: web.Request) -> web.Response:
    _state(request)
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def upload(request: web.Request) -> web.Response:
    """Reads the body, recording progress; answers with its length and SHA-256."""
    state = _state(request)
    digest = hashlib.sha256()
    try:
        async for chunk in request.content.iter_any():
            state.received_bytes += len(chunk)
            digest.update(chunk)
            state.first_bytes_seen.set()
        state.outcome = "complete"
    except BaseException:
        state.outcome = "cancelled"
        raise
    finally:
        state.ended.set()
    return web.json_response({"length": state.received_bytes, "sha256": digest.hexdigest()})


async def redirect(request: web.Request) -> web.Response:
    _state(request)
    raise web.HTTPFound("/engine-rest/engine")


async def compressed(request: web.Request) -> web.Response:
    _state(request)
    body = gzip.compress(b'{"compressed": true}')
    return web.Response(
        body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


# The only credentials the stub's metadata query accepts.
LOOKUP_AUTHORIZATION = "Basic bWV0YTpkYXRh"
METADATA_FILENAME = "Métadonnées ✓.pdf"


async def variable_instances(request: web.Request) -> web.Response:
    """`GET /variable-instance` with a File row named METADATA_FILENAME; 401 without
    LOOKUP_AUTHORIZATION; a variable named `slow` never answers."""
    state = _state(request)
    state.lookup_headers.append(dict(request.headers))
    if request.headers.get("Authorization") != LOOKUP_AUTHORIZATION:
        return web.json_response({"type": "AuthenticationException"}, status=401)
    if request.query.get("variableName") == "slow":
        await asyncio.Event().wait()
    row = {"type": "File", "valueInfo": {"filename": METADATA_FILENAME}, "taskId": None}
    return web.json_response([row])


async def sink(request: web.Request) -> web.Response:
    """Accepts an upload at an engine path and only counts it (for benchmarks); records
    whether it came whole."""
    state = _state(request)
    received = 0
    digest = hashlib.sha256()
    try:
        async for chunk in request.content.iter_any():
            received += len(chunk)
            digest.update(chunk)
        state.outcome = "complete"
    except BaseException:
        state.outcome = "cancelled"
        raise
    finally:
        state.received_bytes = received
        state.received_sha256 = digest.hexdigest()
        state.ended.set()
    return web.Response(status=204, headers={"X-Received-Bytes": str(received)})


async def elsewhere(request: web.Request) -> web.Response:
    """Any other path, as an engine server's other pages: recorded, and not found."""
    _state(request)
    return web.Response(status=404, text="not a stub path", headers={"X-Stub": "elsewhere"})


def build(state: StubState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/engine-rest/engine", engine)
    app.router.add_route("*", "/engine-rest/headers", headers)
    app.router.add_get("/engine-rest/stream", stream)
    app.router.add_get("/engine-rest/stall", stall)
    app.router.add_post("/engine-rest/upload", upload)
    app.router.add_get("/engine-rest/redirect", redirect)
    app.router.add_get("/engine-rest/compressed", compressed)
    app.router.add_get("/engine-rest/variable-instance", variable_instances)
    # The engine's binary paths, for benchmarks that need a fast upstream.
    app.router.add_get("/engine-rest/process-instance/{id}/variables/{name}/data", file_or_stream)
    app.router.add_post("/engine-rest/task/{id}/variables/{name}/data", sink)
    # A JSON door (an external task's completion), for the JSON faults and benchmarks.
    app.router.add_post("/engine-rest/external-task/{id}/complete", sink)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app


def main() -> None:
    """`python -m tests.faults.stub_upstream PORT`: the stub on 127.0.0.1:PORT."""
    import sys

    app = build(StubState())
    if os.environ.get("STUB_FILES"):
        app[FILES] = Path(os.environ["STUB_FILES"])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None)


if __name__ == "__main__":
    main()
