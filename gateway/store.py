"""The document store: where the files the engine only holds a reference to live, on the
local disk (`file:///abs/dir`) or in any S3-compatible store (`s3://bucket[/prefix]`).

Why obstore (Rust's object_store): one async library for both kinds, streaming uploads
from an async iterator as S3 multipart uploads in bounded memory, ranged reads, listing for
the sweep, and the same calls on the disk. aiobotocore would give S3 alone, with boto's
whole client model and no local store; s3fs/fsspec wraps that again, and hand-rolled SigV4
over aiohttp would be signing code of our own to keep right.

What obstore does not do, and this module does:
- **Durability on the disk.** obstore's LocalStore writes a temporary file and renames it,
  but never fsyncs (object_store 0.14 has `with_fsync`; obstore does not expose it). So the
  content is written to a staging key, fsynced here, then linked under its name (a no-
  clobber rename) and its directory fsynced: a crash never leaves half a document under
  its name.
- **Content addressing.** An object's key is its content's SHA-256, known only once the
  last byte has streamed: the content is staged under a random key and committed under its
  hash when complete (on S3 a server-side copy, then the staged object deleted). Two
  uploads of the same bytes store them once.
- **Stopping an upload.** A `put_async` that is *cancelled* leaves an S3 multipart upload
  open, with its parts; one whose iterator *raises* is aborted cleanly. So an upload is
  never cancelled: its source raises (`Upload.stop`), and the put is awaited to its end.
- **Timeouts.** obstore's default 30 s covers a whole request, body included, and its
  retries of a read share one 3-minute budget: a download paced by a slow client would
  fail. The total is set far beyond any transfer, and `read_timeout` (the gateway's own
  `--read-timeout-seconds`) detects a store that stalls.
- **Reads from the disk** go to the client with sendfile (download side): the path of an
  object is the store's root and its key.

Keys: `content/<sha-256 hex>` holds the bytes, `documents/<id>` a document's record (its
signed reference), `kept/<id>` the same for a document the documents API made (kept by
the sweep until deleted or expired), `staging/<id>` an upload in flight.

Memory: an S3 upload holds at most `PART_BYTES * (PART_CONCURRENCY + 1)` (24 MiB) in obstore
(parts being sent are kept for their retries), and up to three pieces of `PIECE_BYTES`
(12 MiB) on their way to it: one gathering, one queued, one being taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.store import LocalStore, S3Store

from gateway import metrics

if TYPE_CHECKING:
    from obstore import GetOptions

CONTENT, DOCUMENTS, STAGING = "content/", "documents/", "staging/"
# A document the documents API made: kept until deleted or expired, attached or not.
KEPT = "kept/"
# obstore's local temporary file: the key, `#` and a number.
_TEMPORARY = re.compile(r"#\d+$")
# Parts of an S3 multipart upload, and how many are sent at once.
PART_BYTES = 8 << 20
PART_CONCURRENCY = 2
# Pieces queued between the request and the store's upload: the store's backpressure.
QUEUED_PIECES = 1
# The request's chunks (256 KiB) are handed to the store in pieces this large: each piece
# crosses into obstore's runtime at a cost, which a copy of the bytes more than pays back
# (measured: half the runtime's CPU per GB on the disk).
PIECE_BYTES = 4 << 20
# A read from S3 hands over at least this much at a time (obstore's default is 10 MiB).
READ_CHUNK_BYTES = 1 << 20
# The total time one request to the store may take: beyond any transfer.
_TOTAL_TIMEOUT = "24h"


class StoreError(Exception):
    """The store did not do what was asked (unreachable, refused, failed); says why."""


class AlreadyExists(Exception):
    """An exclusive write found the object there."""


class StoreConfigError(ValueError):
    """A --document-store value the gateway cannot use."""


@dataclass(frozen=True)
class Location:
    """Where the store is, as configured: `file:///abs/dir` or `s3://bucket[/prefix]`."""

    url: str
    endpoint: str | None = None  # an S3-compatible store's URL (SeaweedFS, MinIO, Ceph)

    @property
    def local_root(self) -> Path | None:
        parts = urlsplit(self.url)
        return Path(parts.path) if parts.scheme == "file" else None


def parse_location(url: str, endpoint: str | None) -> Location:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreConfigError(f"a file store is file:///absolute/dir, got {url!r}")
        if endpoint:
            raise StoreConfigError("--document-store-endpoint is for an S3 store")
        return Location(f"file://{parts.path.rstrip('/') or '/'}")
    if parts.scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise StoreConfigError(f"an S3 store is s3://bucket[/prefix], got {url!r}")
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise StoreConfigError(f"--document-store-endpoint is an http(s) URL, got {endpoint!r}")
        return Location(url.rstrip("/"), endpoint or None)
    raise StoreConfigError(f"--document-store is file:///dir or s3://bucket[/prefix], got {url!r}")


@dataclass(frozen=True)
class Staged:
    key: str
    size: int


@dataclass(frozen=True)
class Stored:
    """An object as the store has it."""

    key: str
    size: int
    last_modified: datetime


class Store:
    """One store, local or S3, behind the operations the gateway needs."""

    def __init__(
        self,
        location: Location,
        *,
        read_timeout_seconds: float,
        counted: metrics.Metrics | None = None,
    ) -> None:
        self._counted = counted or metrics.create(enabled=False)
        self.id = location.url
        self.local_root = location.local_root
        self._objects: LocalStore | S3Store
        if self.local_root is not None:
            self.local_root.mkdir(parents=True, exist_ok=True)
            self._objects = LocalStore(self.local_root)
        else:
            parts = urlsplit(location.url)
            endpoint = location.endpoint
            self._objects = S3Store(
                parts.netloc,
                prefix=parts.path.strip("/") or None,
                endpoint=endpoint,
                virtual_hosted_style_request=endpoint is None,
                client_options={
                    # Given at all, these replace what the environment would have set.
                    "allow_http": endpoint is not None and endpoint.startswith("http:"),
                    "timeout": _TOTAL_TIMEOUT,
                    "connect_timeout": "10s",
                    "read_timeout": f"{read_timeout_seconds:g}s",
                },
                retry_config={"max_retries": 3, "retry_timeout": timedelta(hours=24)},
            )

    @contextlib.asynccontextmanager
    async def _timed(self, operation: str) -> AsyncIterator[None]:
        """One request to the store, counted and timed; its failure is a StoreError. A
        missing object is an answer, not a failure."""
        started = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        except FileNotFoundError:
            ok = True
            raise
        except (obstore.exceptions.BaseError, OSError) as error:
            raise StoreError(_reason(error)) from error
        finally:
            self._counted.store_operation(operation, time.monotonic() - started, ok=ok)

    # --- uploads ------------------------------------------------------------------------

    def upload(self) -> Upload:
        return Upload(self)

    async def commit(self, staged: Staged, content_hash: str) -> None:
        """The staged content under its hash: there once, whoever stored the same bytes.
        Content that was there already is made new again (its time of modification now), so
        that a sweep running meanwhile sees it young and keeps it for the new document."""
        key = CONTENT + content_hash
        if self.local_root is not None:
            async with self._timed("commit"):
                await asyncio.to_thread(self._commit_file, staged.key, key)
            return
        async with self._timed("commit"):
            # Over the same bytes, when they were there: the copy is the refresh.
            await self._objects.copy_async(staged.key, key, overwrite=True)
            await self._objects.delete_async(staged.key)

    def _commit_file(self, staged_key: str, key: str) -> None:
        assert self.local_root is not None
        staged, final = self.local_root / staged_key, self.local_root / key
        _fsync(staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Never over another file: content has one name; if it is there, the same bytes were
        # stored before, and it is only made new again (see commit).
        try:
            os.link(staged, final)
        except FileExistsError:
            os.utime(final)
        os.unlink(staged)
        _fsync(final.parent)

    async def put_record(
        self, document_id: str, data: bytes, *, prefix: str = DOCUMENTS, exclusive: bool = False
    ) -> None:
        """`exclusive`: only if there is none yet, else AlreadyExists (on S3, by
        `If-None-Match: *`)."""
        key = prefix + document_id
        try:
            async with self._timed("put_record"):
                await self._objects.put_async(
                    key, data, mode="create" if exclusive else "overwrite"
                )
                if self.local_root is not None:
                    await asyncio.to_thread(self._sync_file, key)
        except StoreError as error:
            if isinstance(error.__cause__, obstore.exceptions.AlreadyExistsError):
                raise AlreadyExists(key) from None
            raise

    def _sync_file(self, key: str) -> None:
        assert self.local_root is not None
        path = self.local_root / key
        _fsync(path)
        _fsync(path.parent)

    # --- reads --------------------------------------------------------------------------

    async def record(self, document_id: str) -> bytes | None:
        try:
            async with self._timed("get_record"):
                found = await self._objects.get_async(DOCUMENTS + document_id)
                return bytes(await found.bytes_async())
        except FileNotFoundError:
            return None

    async def size(self, key: str) -> int | None:
        """The object's size, or None when there is none."""
        try:
            async with self._timed("head"):
                return (await self._objects.head_async(key))["size"]
        except FileNotFoundError:
            return None

    async def presigned(self, content_hash: str, seconds: int) -> str:
        """An S3 URL anyone may GET the content with for `seconds` (SigV4 in its query)."""
        if not isinstance(self._objects, S3Store):
            raise StoreError("only an S3 store presigns URLs")
        async with self._timed("sign"):
            return await obstore.sign_async(
                self._objects, "GET", CONTENT + content_hash, timedelta(seconds=seconds)
            )

    async def modified(self, key: str) -> datetime | None:
        """When the object was last written, or None when there is none."""
        try:
            async with self._timed("head"):
                return (await self._objects.head_async(key))["last_modified"]
        except FileNotFoundError:
            return None

    def content_path(self, content_hash: str) -> Path | None:
        """On the disk, where the content is (for sendfile); None for S3."""
        return None if self.local_root is None else self.local_root / CONTENT / content_hash

    def read(self, content_hash: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive) of the content, as they come."""
        return self.read_key(CONTENT + content_hash, start, end)

    async def read_key(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive) of an object. Never wrap one step of this in
        a timeout: obstore drops what it had read for a cancelled step."""
        if start == end:
            return
        options: GetOptions = {"range": (start, end)}
        async with self._timed("read"):
            found = await self._objects.get_async(key, options=options)
        count = self._counted.store_bytes_counter("download")
        try:
            async for chunk in found.stream(min_chunk_size=READ_CHUNK_BYTES):
                count(len(chunk))
                yield chunk
        except (obstore.exceptions.BaseError, OSError) as error:
            self._counted.store_operation("read", 0.0, ok=False)
            raise StoreError(_reason(error)) from error

    # --- the sweep ----------------------------------------------------------------------

    async def listed(self, prefix: str) -> list[Stored]:
        """Every object under `prefix`. Listed by obstore's blocking iterator on a thread:
        its async one (ListStream) made 1 in 12 processes abort at exit (pyo3's runtime
        finalising under a future still pending), measured here; the thread never did."""

        def listing() -> list[Stored]:
            return [
                Stored(meta["path"], meta["size"], meta["last_modified"])
                for batch in self._objects.list(prefix)
                for meta in batch
            ]

        async with self._timed("list"):
            return await asyncio.to_thread(listing)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            async with self._timed("delete"):
                await self._objects.delete_async(key)

    def leftovers(self, *, older_than_seconds: float) -> list[Path]:
        """On the disk, the temporary files of puts that never ended (a gateway killed
        mid-upload), which obstore's listing does not show; none on S3, where an
        unfinished multipart upload is the bucket's lifecycle rule's to abort."""
        if self.local_root is None:
            return []
        now = time.time()
        return [
            path
            for path in (self.local_root / STAGING).glob("*#*")
            if _TEMPORARY.search(path.name) and now - path.stat().st_mtime >= older_than_seconds
        ]

    def sent_from_disk(self, size_bytes: int) -> None:
        """Bytes of the disk's content that went out by sendfile (resolve.py)."""
        self._counted.store_bytes_counter("download")(size_bytes)


class UploadStopped(Exception):
    """Raised into the store's upload to abort it: nothing is left of it."""


_END = object()


class Upload:
    """One content streaming into the store under a staging key. `send` each chunk, then
    `finish` for what was staged; `stop` aborts it, and leaves nothing behind.

    The store's put runs as its own task, fed through a short queue (its backpressure), so
    that neither a client leaving nor a drain ever cancels it (see the module's docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.key = STAGING + str(uuid.uuid4())
        self.size = 0
        self._count = store._counted.store_bytes_counter("upload")
        self._started_at = time.monotonic()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._queue: asyncio.Queue[bytes | BaseException | object] = asyncio.Queue(QUEUED_PIECES)
        self._put: asyncio.Future[Any] | None = None

    async def _source(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item

    def _started(self) -> asyncio.Future[Any]:
        if self._put is None:
            self._put = put = asyncio.ensure_future(
                self._store._objects.put_async(
                    self.key,
                    self._source(),
                    chunk_size=PART_BYTES,
                    max_concurrency=PART_CONCURRENCY,
                )
            )
            # A put that ends early (the store failed) takes no more chunks: what waits to
            # be queued is let through, and the next send sees the put's end.
            put.add_done_callback(lambda _: self._drained())
            return put
        return self._put

    def _drained(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def send(self, chunk: bytes | memoryview) -> None:
        self._pending.append(bytes(chunk))
        self._pending_bytes += len(chunk)
        self.size += len(chunk)
        self._count(len(chunk))
        if self._pending_bytes >= PIECE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        put = self._started()
        if put.done():
            await self._failed(put)
        if self._pending:
            # Handed over, not copied, by obstore: a piece must never change after.
            piece = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            await self._queue.put(piece)

    async def finish(self) -> Staged:
        await self._flush()
        put = self._started()
        await self._queue.put(_END)
        await self._failed(put, ended=True)
        return Staged(self.key, self.size)

    async def _failed(self, put: asyncio.Future[Any], *, ended: bool = False) -> None:
        try:
            await asyncio.shield(put)
        except (obstore.exceptions.BaseError, OSError) as error:
            self._observed(ok=False)
            raise StoreError(_reason(error)) from error
        if not ended:
            self._observed(ok=False)
            raise StoreError("the store ended the upload before its last byte")
        self._observed(ok=True)

    def _observed(self, *, ok: bool) -> None:
        duration = time.monotonic() - self._started_at
        self._store._counted.store_operation("upload", duration, ok=ok)

    async def stop(self) -> None:
        """Abort: the put's source raises, and the put is awaited until it has cleaned up
        (even when the request that fed it is being cancelled)."""
        if self._put is None:
            return
        put = self._put
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(UploadStopped())
        try:
            await asyncio.shield(put)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.wait((put,)))  # the abort still finishes
            raise
        except (UploadStopped, obstore.exceptions.BaseError, OSError):
            pass


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno != errno.EINVAL:  # a filesystem that cannot fsync a directory
            raise
    finally:
        os.close(descriptor)


def _reason(error: BaseException) -> str:
    """The first line of obstore's message (the rest is Rust's debug dump)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()
