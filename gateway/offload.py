"""Offloading: a File or Bytes value larger than `--offload-above-bytes` goes into the
document store, and the engine gets its signed reference instead, as the same type: a File
stays a File with its name, MIME type and encoding, a Bytes stays a Bytes.

The content streams into the store as it arrives, in bounded memory, inspected on the way
as any upload is (digests, clamd, the size limit). Only when it is stored, checked and
committed does the engine get its request: a small form with the reference. So:
- a refused upload (malware, a digest, a limit) leaves nothing in the store (the upload is
  stopped, never committed) and nothing in the engine (never asked);
- a client that leaves mid-body, the same;
- a store that is down or fails: 503, nothing in the engine;
- the engine refusing the variable after the content was stored: its answer passes, and
  the content is left for the sweep.
The engine's request waits for the whole body: holding it open while a large body
streamed would run into the engine's own idle timeout (Tomcat's, 60 s).

The doors: a raw `PUT`/`POST …/data` here (upload.py hands it over). A body whose size is
not declared is read ahead up to the threshold, to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from gateway import digest, errors, inspection, multipart
from gateway.documents import Documents, store_unavailable
from gateway.store import StoreError, Upload
from gateway.transfer import Transfer

# The value types the engine stores as a byte array: the ones that are offloaded.
OFFLOADED_TYPES = frozenset({"File", "file", "Bytes", "bytes"})


class Refused(Exception):
    """The offload did not happen and the request must be refused: `error` says why."""

    def __init__(self, error: errors.GatewayError, outcome: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.outcome = outcome


@dataclass(frozen=True)
class Decision:
    """Whether a body is offloaded, and the body to read from now on (with what was read
    ahead to decide put back in front)."""

    offloaded: bool
    body: AsyncIterator[bytes]


async def decide(
    documents: Documents, declared: int | None, body: AsyncIterator[bytes]
) -> Decision:
    """Offload by the declared size, or by reading ahead up to the threshold."""
    if declared is not None:
        return Decision(documents.offloads(declared), body)
    ahead: list[bytes] = []
    size = 0
    async for chunk in body:
        ahead.append(chunk)
        size += len(chunk)
        if documents.offloads(size):
            return Decision(True, _replayed(ahead, body))
    return Decision(documents.offloads(size), _replayed(ahead, body))


async def _replayed(ahead: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in ahead:
        yield chunk
    async for chunk in rest:
        yield chunk


async def into_store(
    documents: Documents,
    body: AsyncIterator[bytes],
    part: multipart.Part,
    inspected: inspection.Upload | None,
    transfer: Transfer,
) -> bytes:
    """The value's content (`body`, the `data` part `part`) stored and committed as a new
    document; its signed reference. Raises Refused, or what cut the body (UploadRejected
    with the reason on `transfer`), or CancelledError: the store then has nothing of it."""
    upload = documents.store.upload()
    # The digest code computes the stored content's SHA-256 when digests are on.
    own_hash = hashlib.sha256() if inspected is None or not inspected.hashes_stored else None
    try:
        if inspected is not None:
            await inspected.event(multipart.PartBegins(part))
        async for chunk in body:
            if inspected is not None:
                await inspected.event(multipart.Content(chunk))
            if own_hash is not None:
                own_hash.update(chunk)
            await upload.send(chunk)
        if inspected is not None:
            await inspected.event(multipart.PartEnds(part))
            await inspected.finish()
        staged = await upload.finish()
    except inspection.Rejected as rejected:
        await _stopped(upload)
        raise Refused(rejected.error, "rejected") from rejected
    except StoreError as failed:
        await _stopped(upload)
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed
    except BaseException:
        await _stopped(upload)  # a client that left, a limit, a drain: nothing is kept
        raise
    if own_hash is not None:
        content_hash = own_hash.hexdigest()
    else:
        assert inspected is not None
        assert inspected.stored is not None
        content_hash = inspected.stored[digest.DEFAULT_ALGORITHM].hex()
    try:
        return await documents.create(staged, content_hash, _media_type(part), part.filename)
    except StoreError as failed:
        await _discarded(documents, upload)
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed


async def _stopped(upload: Upload) -> None:
    await asyncio.shield(upload.stop())


async def _discarded(documents: Documents, upload: Upload) -> None:
    with contextlib.suppress(StoreError):  # else left for the sweep
        await documents.store.delete(upload.key)


def _media_type(part: multipart.Part) -> str | None:
    if part.content_type is None:
        return None
    return part.content_type.partition(";")[0].strip() or None


async def raw(
    request: web.Request,
    documents: Documents,
    transfer: Transfer,
    outgoing: CIMultiDict[str],
    body: AsyncIterator[bytes],
    inspected: inspection.Upload | None,
    wrapped: multipart.WrappedForm,
) -> AsyncIterator[bytes]:
    """A raw upload's value offloaded: the engine's form around its reference, with the
    headers for it set on `outgoing`. Raises as `into_store` does."""
    signed = await into_store(documents, body, wrapped.part, inspected, transfer)
    transfer.offloaded += 1
    outgoing["Content-Length"] = str(wrapped.length(len(signed)))
    return _form(wrapped, signed)


async def _form(wrapped: multipart.WrappedForm, signed: bytes) -> AsyncIterator[bytes]:
    yield wrapped.head + signed + wrapped.tail
