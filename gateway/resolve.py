"""A download answered from the document store: the engine answered the caller's own request
with 200 and a reference this gateway signed (documents.py), so the engine has decided the
caller may read it; the content comes from the store.

The answer is what the engine would send for the file itself: its name and type (the
engine's own header, the variable's File name, or the lookups of download.py), the
content's `Content-Length`, `ETag` (its SHA-256) and `Accept-Ranges: bytes`; `Range` and
`If-Range` honoured (ranges.py: 206 with `Content-Range`, 416 when unsatisfiable);
`If-None-Match` answered 304; `HEAD` (the engine is asked with GET, to see the reference).
A wanted `Repr-Digest` costs nothing: the content's SHA-256 is its name.

From the disk, the body goes out with sendfile, as aiohttp's FileResponse sends a file (in
pieces, so that its bytes are counted as they move); from S3, as obstore reads it. With
`--clamd-scan-downloads` it is read through Python instead, and scanned: its last piece
held until clamd's verdict, as for any download. A store that fails mid-body cuts the
client's connection, as an engine that dies does: a short body never looks complete.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from multidict import CIMultiDict

from gateway import digest, errors, inspection, ranges
from gateway.documents import Documents, store_failed
from gateway.reference import Reference
from gateway.store import StoreError
from gateway.transfer import Transfer, abort_client, refuse, sent

# A sendfile call moves at most this much, so a long download's bytes are counted as they go.
SENDFILE_PIECE_BYTES = 16 << 20
# Read from the disk this much at a time when the body must pass through Python.
READ_PIECE_BYTES = 1 << 20
# The engine's headers that describe its answer's body, not the document's.
_ENGINE_BODY_HEADERS = ("Content-Length", "Transfer-Encoding", "ETag", "Content-Range")


async def answer(
    request: web.Request,
    transfer: Transfer,
    found: Reference,
    documents: Documents,
    outgoing_headers: CIMultiDict[str],
    watched: inspection.Download | None,
    *,
    recorded: bool = False,
) -> web.StreamResponse:
    """`recorded`: the document's record was just read (documents.found)."""
    try:
        located = await documents.located(found, recorded=recorded)
    except StoreError as error:
        transfer.resolved = "store_error"
        return refuse(transfer, store_failed(str(error)))
    if isinstance(located, errors.GatewayError):
        transfer.resolved = "not_found" if located.status == 404 else "missing"
        return refuse(transfer, located, "rejected" if located.status == 404 else "upstream_abort")
    size = located
    transfer.resolved = "document"
    # Only a scan needs the bytes in Python: the content's digest is its name.
    scanned = watched if watched is not None and watched.scans else None
    sha = base64.b64encode(bytes.fromhex(found.content_hash)).decode()
    transfer.digest = f"{digest.DEFAULT_ALGORITHM}=:{sha}:"
    tag = ranges.etag(found.content_hash)
    headers = CIMultiDict(outgoing_headers)
    for name in _ENGINE_BODY_HEADERS:
        headers.popall(name, None)
    headers["ETag"] = tag
    headers["Accept-Ranges"] = "bytes"
    if "Want-Repr-Digest" in request.headers:
        headers["Repr-Digest"] = transfer.digest
    if request.headers.get("If-None-Match", "").strip() in (tag, "*"):
        return _sent(transfer, web.Response(status=304, headers=_validators(headers)))
    asked = request.headers.get("Range") if request.method == "GET" else None
    chosen = ranges.select(asked, request.headers.get("If-Range"), size, tag)
    if isinstance(chosen, ranges.Unsatisfiable):
        refused = refuse(transfer, _unsatisfiable(asked or "", size), "rejected")
        refused.headers["Content-Range"] = chosen.content_range(size)
        return refused
    start, end, status = 0, size, 200
    if isinstance(chosen, ranges.Partial):
        start, end, status = chosen.start, chosen.end, 206
        headers["Content-Range"] = chosen.content_range(size)
    headers["Content-Length"] = str(end - start)

    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    _sent(transfer, response)
    if request.method == "HEAD" or start == end:
        await response.write_eof()
        return response
    path = documents.store.content_path(found.content_hash)
    try:
        if path is not None and scanned is None:
            await _sendfile(request, transfer, path, start, end, documents.store.sent_from_disk)
        else:
            pieces = (
                _read_file(path, start, end, documents.store.sent_from_disk)
                if path is not None
                else documents.store.read(found.content_hash, start, end)
            )
            if not await sent(request, response, transfer, _checked(pieces, end - start), scanned):
                return response
    except (StoreError, OSError, _ShortContent):
        # The store broke off or lost bytes: the client must never take this as whole.
        abort_client(request, transfer, "upstream_abort")
        return response
    await response.write_eof()
    return response


class _ShortContent(Exception):
    """The store had fewer bytes than the document's size."""


def _sent(transfer: Transfer, response: web.StreamResponse) -> web.StreamResponse:
    transfer.status = response.status
    transfer.first_byte = time.monotonic()
    return response


def _validators(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """What a 304 carries (RFC 9110 §15.4.5)."""
    return CIMultiDict((k, v) for k, v in headers.items() if k in ("ETag", "Cache-Control"))


def _unsatisfiable(asked: str, size: int) -> errors.GatewayError:
    return errors.GatewayError(
        416,
        "RangeNotSatisfiableException",
        f"The document has {size} bytes: no byte of {asked!r} is there.",
    )


async def _sendfile(
    request: web.Request,
    transfer: Transfer,
    path: os.PathLike[str],
    start: int,
    end: int,
    sent_from_disk: Callable[[int], None],
) -> None:
    loop = asyncio.get_running_loop()
    with open(path, "rb") as file:  # noqa: ASYNC230 (an open is no wait; sendfile is async)
        if os.fstat(file.fileno()).st_size < end:
            raise _ShortContent
        offset = start
        while offset < end:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client's connection is gone")
            piece = min(SENDFILE_PIECE_BYTES, end - offset)
            await loop.sendfile(transport, file, offset, piece)
            offset += piece
            transfer.sent_down(piece)
            sent_from_disk(piece)


async def _read_file(
    path: os.PathLike[str], start: int, end: int, read_from_disk: Callable[[int], None]
) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:  # noqa: ASYNC230 (reads go to a thread)
        file.seek(start)
        remaining = end - start
        while remaining > 0:
            piece = await asyncio.to_thread(file.read, min(READ_PIECE_BYTES, remaining))
            if not piece:
                return
            remaining -= len(piece)
            read_from_disk(len(piece))
            yield piece


async def _checked(pieces: AsyncIterator[bytes], length: int) -> AsyncIterator[bytes]:
    """`pieces`, raising _ShortContent at their end unless they were `length` bytes."""
    moved = 0
    async for piece in pieces:
        moved += len(piece)
        yield piece
    if moved != length:
        raise _ShortContent
