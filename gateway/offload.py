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

The doors (upload.py hands them over):
- a raw `PUT`/`POST …/data`: a body whose size is not declared is read ahead up to the
  threshold, to tell;
- a multipart `…/data` form: read whole before the engine is asked (the valueType part may
  come after the content), its `data` part held in memory up to the threshold and streamed
  into the store beyond it. The engine gets a form of the parts it reads (`data`,
  `valueType`, `type`; it ignores any other), with the reference, or with the content
  itself when it was not offloaded. A large `data` that turns out not to be a File or
  Bytes (a String, or the deprecated serialized form) goes to the engine from where it was
  staged, and the staged copy is deleted;
- the File and Bytes values in a JSON door's body: jsonoffload.py.
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
from gateway.store import Staged, StoreError, Upload
from gateway.transfer import Transfer

# The form parts the engine reads for a variable (AbstractVariablesResource.setBinaryVariable).
_TEXT_PARTS = ("valueType", "type")

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
    """Offload by the declared size, or by reading ahead up to the threshold; a body small
    enough to be a reference is read whole, and a valid one is stored as it is."""
    told = declared is not None and (
        documents.streams(declared) or not documents.offloads(declared)
    )
    if declared is not None and told:
        return Decision(documents.offloads(declared), body)
    ahead: list[bytes] = []
    size = 0
    async for chunk in body:
        ahead.append(chunk)
        size += len(chunk)
        if documents.streams(size):
            return Decision(True, _replayed(ahead, body))
    return Decision(documents.offloads_whole(b"".join(ahead)), _replayed(ahead, body))


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
        await stopped(upload)
        raise Refused(rejected.error, "rejected") from rejected
    except StoreError as failed:
        await stopped(upload)
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed
    except BaseException:
        await stopped(upload)  # a client that left, a limit, a drain: nothing is kept
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


async def stopped(upload: Upload) -> None:
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
    transfer.offloaded, transfer.offload_door = transfer.offloaded + 1, "raw"
    outgoing["Content-Length"] = str(wrapped.length(len(signed)))
    return _form(wrapped, signed)


async def _form(wrapped: multipart.WrappedForm, signed: bytes) -> AsyncIterator[bytes]:
    yield wrapped.head + signed + wrapped.tail


class Spill:
    """A value's content as it streams: held while small, into the store once it is not."""

    def __init__(self, documents: Documents, hashed: bool) -> None:
        self._documents = documents
        self.held: list[bytes] = []
        self.size = 0
        self.upload: Upload | None = None
        self.hash = hashlib.sha256() if hashed else None

    async def add(self, data: bytes | memoryview) -> None:
        chunk = bytes(data)  # a view into the scanner's buffer: valid until its next feed
        self.size += len(chunk)
        if self.hash is not None:
            self.hash.update(chunk)
        if self.upload is None:
            self.held.append(chunk)
            if not self._documents.streams(self.size):
                return
            self.upload = self._documents.store.upload()
            held, self.held = self.held, []
            for piece in held:
                await self.upload.send(piece)
            return
        await self.upload.send(chunk)

    async def finished(self) -> Staged | None:
        """What was staged, once the content has ended; None when it stays where it is."""
        if self.upload is None:
            content = b"".join(self.held)
            if not self._documents.offloads_whole(content):
                return None
            self.upload = self._documents.store.upload()
            await self.upload.send(content)
        return await self.upload.finish()

    async def stop(self) -> None:
        if self.upload is not None:
            await stopped(self.upload)


@dataclass
class _Data:
    """A form's `data` part, and its content."""

    part: multipart.Part
    content: Spill


@dataclass(frozen=True)
class Formed:
    """The engine's form for a multipart upload, and whether its value was offloaded."""

    data: AsyncIterator[bytes]
    wrapped: multipart.WrappedForm
    length: int
    offloaded: bool


async def form(
    documents: Documents,
    body: AsyncIterator[bytes],
    scanner: multipart.FormScanner,
    inspected: inspection.Upload | None,
) -> Formed:
    """A variable form read whole, its large File or Bytes content offloaded; the form the
    engine gets instead. Raises Refused, multipart.FormError, what cut the body, or
    CancelledError: the store then has nothing of it."""
    own_hash = inspected is None or not inspected.hashes_stored
    current: _Data | None = None
    last: _Data | None = None
    try:
        async for chunk in body:
            if inspected is not None:
                inspected.body(chunk)
            for event in scanner.feed(chunk):
                if inspected is not None:
                    await inspected.event(event)
                if isinstance(event, multipart.PartBegins) and event.part.field_name == "data":
                    current = _Data(event.part, Spill(documents, own_hash))
                elif isinstance(event, multipart.Content) and current is not None:
                    await current.content.add(event.data)
                elif isinstance(event, multipart.PartEnds) and current is not None:
                    if last is not None:
                        await last.content.stop()  # a later part of the same name wins
                    current.part, last, current = event.part, current, None
        parts = scanner.finish()
        multipart.check_variable_form(parts)
        if inspected is not None:
            await inspected.finish()
        assert last is not None  # the check found a data part
        staged = await last.content.finished()
    except inspection.Rejected as rejected:
        await _both_stopped(current, last)
        raise Refused(rejected.error, "rejected") from rejected
    except StoreError as failed:
        await _both_stopped(current, last)
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed
    except BaseException:
        await _both_stopped(current, last)
        raise
    named = {part.field_name: part for part in parts}
    texts = [(name, named[name].text or b"") for name in _TEXT_PARTS if name in named]
    wrapped = multipart.form_around(last.part, texts)
    if staged is None:
        held = b"".join(last.content.held)
        return Formed(
            _one(wrapped.head + held + wrapped.tail), wrapped, wrapped.length(len(held)), False
        )
    if "type" in named or wrapped.value_type not in OFFLOADED_TYPES:
        # Not a byte array to the engine: it gets the content, from where it was staged.
        data = _from_staging(documents, staged, wrapped)
        return Formed(data, wrapped, wrapped.length(staged.size), False)
    if last.content.hash is not None:
        content_hash = last.content.hash.hexdigest()
    else:
        assert inspected is not None
        assert inspected.stored is not None
        content_hash = inspected.stored[digest.DEFAULT_ALGORITHM].hex()
    try:
        signed = await documents.create(
            staged, content_hash, _media_type(last.part), last.part.filename
        )
    except StoreError as failed:
        with contextlib.suppress(StoreError):  # else left for the sweep
            await documents.store.delete(staged.key)
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed
    return Formed(
        _one(wrapped.head + signed + wrapped.tail), wrapped, wrapped.length(len(signed)), True
    )


async def _both_stopped(current: _Data | None, last: _Data | None) -> None:
    for data in (current, last):
        if data is not None:
            await data.content.stop()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _from_staging(
    documents: Documents, staged: Staged, wrapped: multipart.WrappedForm
) -> AsyncIterator[bytes]:
    try:
        yield wrapped.head
        async for chunk in documents.store.read_key(staged.key, 0, staged.size):
            yield chunk
        yield wrapped.tail
    finally:
        with contextlib.suppress(StoreError):  # else left for the sweep
            await asyncio.shield(documents.store.delete(staged.key))
