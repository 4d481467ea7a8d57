"""Offloading at the JSON doors: the File and Bytes values in a JSON door's body
(routes.JSON_DOORS), found and decoded as they stream (jsonvalues.py). Each one over the
threshold goes into the store as it is decoded (offload.py), and the engine gets the body
with that value's string replaced by its reference, in base64, as the engine reads a
value. So a file too large for the engine's JSON limit is taken too.

The body's text is kept in a spooled temporary file until its end (a value's type may come
after it, and decides), then sent with the replacements: the engine gets it as UTF-8, which
it reads whatever the body was (it detects the encoding). A body the scanner stops reading
(not JSON) is sent as it came after that: the engine refuses it as before.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway import inspection, jsonfiles, jsonvalues
from gateway.documents import Documents, store_unavailable
from gateway.offload import Refused, Spill
from gateway.store import StoreError

# The body's text is held in memory up to this much, on disk beyond.
SPOOL_MEMORY_BYTES = 1 << 20
# Read back from the spool this much at a time.
SPOOL_PIECE_BYTES = 256 * 1024


@dataclass
class _Value:
    start: int  # where its characters start in the body's text
    content: Spill
    end: int | None = None


class JsonOffload:
    """One JSON body's large File and Bytes values into the store: `listen` is given the
    scanner's events (jsonfiles.JsonFiles' listener), `text` the body's text chunk by chunk,
    and `body` makes the engine's body once the whole body was read."""

    def __init__(self, documents: Documents) -> None:
        self._documents = documents
        self._spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY_BYTES)  # noqa: SIM115 (closed in body)
        self._values: dict[int, _Value] = {}  # begun since the last typed value ended
        self._current: _Value | None = None
        self._replaced: list[tuple[int, int, bytes]] = []  # text range, its replacement
        self.offloaded = 0

    def text(self, data: bytes) -> None:
        self._spool.write(data)

    async def listen(self, event: jsonvalues.Event) -> None:
        if isinstance(event, jsonvalues.ValueBegins):
            if event.start is not None:
                self._current = _Value(event.start, Spill(self._documents, hashed=True))
                self._values[event.index] = self._current
        elif isinstance(event, jsonvalues.Decoded):
            if self._current is not None:
                await self._current.content.add(event.data)
        elif isinstance(event, jsonvalues.ValueEnds):
            if self._current is not None:
                self._current.end = event.end
            self._current = None
        else:
            await self._typed_value_ends(event.stored)

    async def _typed_value_ends(self, stored: jsonvalues.Stored | None) -> None:
        values, self._values = self._values, {}
        chosen = values.pop(stored.index, None) if stored is not None else None
        for value in values.values():
            await value.content.stop()  # not what the engine stores
        if chosen is None or stored is None:
            return
        if not stored.exact or chosen.end is None:
            # Its type came after it, and what was decoded is not what the engine stores.
            await chosen.content.stop()
            return
        staged = await chosen.content.finished()
        if staged is None:
            return  # small, or a reference: it stays in the body
        assert chosen.content.hash is not None
        signed = await self._documents.create(
            staged, chosen.content.hash.hexdigest(), None, stored.filename
        )
        self._replaced.append((chosen.start, chosen.end, base64.b64encode(signed)))
        self.offloaded += 1

    async def stop(self) -> None:
        """Nothing of this body is kept: uploads in flight are aborted (a committed value is
        left for the sweep: its reference never reached the engine)."""
        for value in self._values.values():
            await value.content.stop()
        self._values = {}
        self._spool.close()

    def body(self) -> tuple[AsyncIterator[bytes], int]:
        """The engine's body, and its length."""
        size = self._spool.tell()
        length = size + sum(len(new) - (end - start) for start, end, new in self._replaced)
        return self._sent(size), length

    async def _sent(self, size: int) -> AsyncIterator[bytes]:
        spool = self._spool
        try:
            position = 0
            for start, end, new in [*sorted(self._replaced), (size, size, b"")]:
                spool.seek(position)
                while position < start:
                    piece = spool.read(min(SPOOL_PIECE_BYTES, start - position))
                    position += len(piece)
                    yield piece
                if new:
                    yield new
                position = end
        finally:
            spool.close()


async def json_body(
    body: AsyncIterator[bytes],
    files: jsonfiles.JsonFiles,
    offload: JsonOffload,
) -> tuple[AsyncIterator[bytes], int]:
    """A JSON door's body read whole, its large values offloaded (`offload` must be the
    listener of `files`); the engine's body and its length. Raises Refused,
    jsonvalues.InvalidValue, what cut the body, or CancelledError: uploads in flight are
    then aborted."""
    try:
        async for chunk in body:
            reading = files.reading
            await files.feed(chunk)
            offload.text(files.scanner.text if reading else chunk)
        reading = files.reading
        await files.finish()
        if reading:
            offload.text(files.scanner.text)
    except inspection.Rejected as rejected:
        await offload.stop()
        raise Refused(rejected.error, "rejected") from rejected
    except StoreError as failed:
        await offload.stop()
        raise Refused(store_unavailable(str(failed)), "upstream_abort") from failed
    except BaseException:
        await offload.stop()
        raise
    return offload.body()
