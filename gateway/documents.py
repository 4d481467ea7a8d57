"""Documents: the files the engine keeps only a signed reference to, as the gateway makes
and finds them. The store holds the bytes (store.py), the reference says where they are
(reference.py); this module ties the two, for the upload side (offload.py) and the
download side (resolve.py).

A document is three things in the store: its content under its SHA-256 (shared by every
document with the same bytes), its record under its id (the signed reference, as the
engine stores it), and, between the two, nothing else. A reference resolves only when its
signature is valid, its record is there and its content is there:
- no record, or its `expiresAt` has passed: the document was deleted or has expired (a
  decision): 404 DocumentNotFoundException;
- a record and no content: the store lost it (a failure): 502 DocumentMissingException,
  counted, and alerted on.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import errors, reference
from gateway.reference import Forged, Reference
from gateway.store import CONTENT, DOCUMENTS, KEPT, Staged, Store

# Where a document can be fetched through the gateway (the documents API's path).
DOCUMENTS_PATH = "/documents"


class KeysError(ValueError):
    """The document key file cannot be read or holds no usable key."""


def read_keys(path: str) -> tuple[bytes, ...]:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise KeysError(f"cannot read the document key file {path!r}: {error}") from None
    except UnicodeDecodeError:
        raise KeysError(f"the document key file {path!r} is not text") from None
    try:
        return reference.parse_keys(text)
    except reference.KeyFileError as error:
        raise KeysError(f"{path}: {error}") from None


@dataclass(frozen=True)
class Gone:
    """Why a document is not served: `not_found` (deleted, never there, or a wrong hash) or
    `expired`; `error` is the answer."""

    reason: str
    error: errors.GatewayError


@dataclass(frozen=True)
class Documents:
    store: Store
    keys: tuple[bytes, ...]  # the first signs, every one verifies
    offload_above_bytes: int  # values larger than this go to the store; 0: every one
    path: str = DOCUMENTS_PATH  # where the documents API serves them (a reference's href)

    def offloads(self, size_bytes: int) -> bool:
        return size_bytes > self.offload_above_bytes or self.offload_above_bytes == 0

    def streams(self, size_bytes: int) -> bool:
        """Content this large goes to the store as it streams: it is to be offloaded, and
        too large to be a reference (one is stored as it is, never offloaded again)."""
        return self.offloads(size_bytes) and size_bytes > reference.MAX_BYTES

    def offloads_whole(self, content: bytes) -> bool:
        """Whether small content, held whole, goes to the store all the same: it is over the
        threshold and not a reference this gateway signed."""
        return self.offloads(len(content)) and not isinstance(self.verified(content), Reference)

    async def create(
        self, staged: Staged, content_hash: str, content_type: str | None, name: str | None
    ) -> bytes:
        """The staged content committed as a new document; its signed reference."""
        return await self.commit(staged, self.made(staged.size, content_hash, content_type, name))

    def made(
        self,
        size: int,
        content_hash: str,
        content_type: str | None,
        name: str | None,
        *,
        document_id: str | None = None,
        expires_at: datetime | None = None,
        custom_properties: dict[str, Any] | None = None,
    ) -> Reference:
        """A new document's reference, before it is signed and stored."""
        document_id = document_id or str(uuid.uuid4())
        return Reference(
            store_id=self.store.id,
            document_id=document_id,
            content_hash=content_hash,
            size=size,
            content_type=content_type,
            file_name=name,
            expires_at=None if expires_at is None else rfc3339(expires_at),
            href=f"{self.path}/{document_id}?contentHash={content_hash}",
            custom_properties=custom_properties,
        )

    async def commit(
        self, staged: Staged, made: Reference, *, kept: bool = False, exclusive: bool = False
    ) -> bytes:
        """The staged content committed under `made`; its signed reference. A kept
        document (the documents API's) is marked so first: the sweep keeps it until it is
        deleted or expires, attached to a variable or not. `exclusive`: a document id the
        caller chose, taken only if no document has it (else store.AlreadyExists, and
        nothing is committed)."""
        signed = reference.encode(made, self.keys[0])
        if kept:
            await self.store.put_record(made.document_id, signed, prefix=KEPT, exclusive=exclusive)
        await self.store.commit(staged, made.content_hash)
        await self.store.put_record(made.document_id, signed)
        return signed

    async def found(self, document_id: str, content_hash: str) -> Reference | Gone:
        """The document `document_id` if `content_hash` is its content's: a wrong hash is
        answered as a document that is not there, so it tells nothing. Raises StoreError."""
        record = await self.store.record(document_id)
        verified = None if record is None else self.verified(record)
        if not isinstance(verified, Reference) or not hmac.compare_digest(
            verified.content_hash, content_hash
        ):
            return Gone("not_found", document_not_found(document_id))
        if expired(verified, datetime.now(UTC)):
            return Gone("expired", document_expired(document_id, verified.expires_at or ""))
        return verified

    async def delete(self, document_id: str) -> None:
        """The document gone: its record first, so that nothing resolves it from then on.
        Its content stays for the sweep, which deletes it once no record and no variable
        names it (another document or variable may share it, or a new upload be adding
        the same bytes right now). Raises StoreError."""
        await self.store.delete(DOCUMENTS + document_id)
        await self.store.delete(KEPT + document_id)

    def verified(self, data: bytes) -> Reference | Forged | None:
        """What `data` (a small answer of the engine's) is: a reference this gateway signed,
        a forged one, or any other file (None)."""
        return reference.decode(data, self.keys)

    async def located(
        self, found: Reference, *, recorded: bool = False
    ) -> int | errors.GatewayError:
        """The size of a verified reference's content in the store, or why it cannot be
        served; `recorded`: its record was just read (found), and is not asked for again.
        Raises StoreError when the store does not answer."""
        if not recorded and await self.store.record(found.document_id) is None:
            return document_not_found(found.document_id)
        if expired(found, datetime.now(UTC)):
            return document_expired(found.document_id, found.expires_at or "")
        size = await self.store.size(CONTENT + found.content_hash)
        if size is None:
            return document_missing(found.document_id, found.content_hash)
        return size


def document_not_found(document_id: str) -> errors.GatewayError:
    return errors.GatewayError(
        404, "DocumentNotFoundException", f"The document {document_id} was deleted."
    )


def rfc3339(moment: datetime) -> str:
    """As Camunda 8 writes an instant: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expired(found: Reference, now: datetime) -> bool:
    if found.expires_at is None:
        return False
    try:
        return datetime.fromisoformat(found.expires_at) <= now
    except ValueError:
        return True  # only this gateway signs references: never, but never served either


def document_expired(document_id: str, expires_at: str) -> errors.GatewayError:
    return errors.GatewayError(
        404, "DocumentNotFoundException", f"The document {document_id} expired at {expires_at}."
    )


def document_missing(document_id: str, content_hash: str) -> errors.GatewayError:
    return errors.GatewayError(
        502,
        "DocumentMissingException",
        f"The content of document {document_id} (sha-256 {content_hash}) is missing from "
        "the document store.",
    )


def store_unavailable(reason: str) -> errors.GatewayError:
    return errors.GatewayError(
        503,
        "DocumentStoreUnavailableException",
        f"The document store did not take the file ({reason}); the engine stored nothing "
        "of it. Try again later.",
    )


def store_failed(reason: str) -> errors.GatewayError:
    return errors.GatewayError(
        502, "DocumentStoreUnavailableException", f"The document store did not answer: {reason}"
    )
