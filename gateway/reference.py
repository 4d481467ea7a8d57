"""A signed reference to a document in the store: what the engine keeps instead of a file's
bytes. Pure: no I/O.

The reference is a small (at most 1 KiB), self-describing JSON document, and the content of
the File or Bytes variable the engine stores:

    {"engine-gateway":"document/1","storeId":"s3://bucket/prefix","documentId":"<uuid>",
     "contentHash":"<sha-256, hex>","metadata":{"contentType":"application/pdf",
     "fileName":"report.pdf","size":1048577,"expiresAt":null},
     "href":"/documents/<uuid>?contentHash=<sha-256>","signature":"hmac-sha256:<base64url>"}

A document made through the documents API (documentsapi.py) may carry its caller's
`customProperties` in its metadata, after `expiresAt`; the member is written only then.

The field names are Camunda 8's DocumentReference's (`storeId`, `documentId`,
`contentHash`, `metadata`), so code that reads one reads the other. `href` is the path to
fetch it through the gateway.

It is recognised **only by a valid signature**: HMAC-SHA256 under one of the document keys
(`--document-key-file`: one key per line, the first signs, every one verifies, so a key can
be rotated in). The signed bytes are the reference as written, without its signature
member, and a reference is read only in the exact form this module writes it (its members
in this order, no white space, UTF-8): any change to its bytes, a space included, fails.
An unsigned, altered or foreign reference is just the small file it is, never resolved:
otherwise anyone who can write a variable straight into the engine could name a document
they never had and read it through the gateway (a confused deputy).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MARKER = "document/1"
MAX_BYTES = 1024
SIGNATURE_PREFIX = "hmac-sha256:"
# A key shorter than this is refused: it would be guessable (32 hex characters: 128 bits).
MIN_KEY_CHARS = 32
# The fileName is informational (the engine keeps the name in the variable); it is cut to
# this much so that any reference fits MAX_BYTES.
FILENAME_MAX_BYTES = 255
CONTENT_TYPE_MAX_CHARS = 200

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DOCUMENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LEADING = b'{"engine-gateway":"' + MARKER.encode() + b'"'


class KeyFileError(ValueError):
    """A document key file the gateway cannot sign with; the message says why."""


@dataclass(frozen=True)
class Reference:
    store_id: str
    document_id: str  # a UUID, lower case
    content_hash: str  # the content's SHA-256, lower-case hex
    size: int
    content_type: str | None
    file_name: str | None
    expires_at: str | None  # RFC 3339, or None: never
    href: str
    # A documents API caller's own properties (Camunda 8's customProperties); None: none
    # given, and the member is not written (references made before it read as they were).
    custom_properties: dict[str, Any] | None = None


@dataclass(frozen=True)
class Forged:
    """Bytes that claim to be a reference and are not one this gateway signed."""

    reason: str


def parse_keys(text: str) -> tuple[bytes, ...]:
    """The keys of a key file: one per line, blank lines and `#` comments skipped."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key) < MIN_KEY_CHARS:
            raise KeyFileError(
                f"line {number}: a document key must have at least {MIN_KEY_CHARS} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        keys.append(key.encode())
    if not keys:
        raise KeyFileError("the document key file holds no key")
    return tuple(keys)


def _members(reference: Reference) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "contentType": reference.content_type,
        "fileName": reference.file_name,
        "size": reference.size,
        "expiresAt": reference.expires_at,
    }
    if reference.custom_properties is not None:
        metadata["customProperties"] = reference.custom_properties
    return {
        "engine-gateway": MARKER,
        "storeId": reference.store_id,
        "documentId": reference.document_id,
        "contentHash": reference.content_hash,
        "metadata": metadata,
        "href": reference.href,
    }


def _dumps(members: dict[str, Any]) -> bytes:
    return json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode()


def _signature(unsigned: bytes, key: bytes) -> str:
    mac = hmac.new(key, unsigned, hashlib.sha256).digest()
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _signed(unsigned: bytes, signature: str) -> bytes:
    # The signature member goes last: the signed bytes are the reference up to it.
    return unsigned[:-1] + b',"signature":' + json.dumps(signature).encode() + b"}"


def cut_file_name(name: str | None) -> str | None:
    """`name` cut to FILENAME_MAX_BYTES of UTF-8, on a character boundary."""
    if name is None:
        return None
    return name.encode()[:FILENAME_MAX_BYTES].decode(errors="ignore")


def encode(reference: Reference, key: bytes) -> bytes:
    """The reference as the engine stores it, signed with `key`. What does not fit in
    MAX_BYTES is dropped: the name first, then the type (escaped control characters can
    make either six times its length); the members that locate the content never are."""
    if len(reference.content_type or "") > CONTENT_TYPE_MAX_CHARS:
        reference = dataclasses.replace(reference, content_type=None)
    reference = dataclasses.replace(reference, file_name=cut_file_name(reference.file_name))
    unnamed = dataclasses.replace(reference, file_name=None)
    for candidate in (reference, unnamed, dataclasses.replace(unnamed, content_type=None)):
        unsigned = _dumps(_members(candidate))
        data = _signed(unsigned, _signature(unsigned, key))
        if len(data) <= MAX_BYTES:
            return data
    raise ValueError(f"a reference to {reference.href!r} cannot fit in {MAX_BYTES} bytes")


def looks_like(data: bytes) -> bool:
    """Whether `data` claims to be a reference: worth verifying (cheap, no parsing)."""
    return len(data) <= MAX_BYTES and data.startswith(_LEADING)


def decode(data: bytes, keys: Sequence[bytes]) -> Reference | Forged | None:
    """The reference `data` is, if one of `keys` signed it; Forged if it claims to be one
    and is not; None if it does not claim to be one (any other small file)."""
    if not looks_like(data):
        return None
    try:
        members = json.loads(data)
    except ValueError:
        return Forged("not JSON")
    try:
        reference = _reference(members)
    except (KeyError, TypeError, ValueError) as error:
        return Forged(f"not a reference: {error}")
    signature = members["signature"]
    unsigned = _dumps(_members(reference))
    if _signed(unsigned, signature) != data:
        return Forged("not in the form the gateway writes")
    if not any(hmac.compare_digest(_signature(unsigned, key), signature) for key in keys):
        return Forged("the signature is not one of the document keys'")
    return reference


def _reference(members: Any) -> Reference:
    if not isinstance(members, dict) or not isinstance(members.get("signature"), str):
        raise ValueError("no signature")
    metadata = members["metadata"]
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not an object")
    reference = Reference(
        store_id=_text(members["storeId"]),
        document_id=_text(members["documentId"]),
        content_hash=_text(members["contentHash"]),
        size=metadata["size"],
        content_type=_optional_text(metadata["contentType"]),
        file_name=_optional_text(metadata["fileName"]),
        expires_at=_optional_text(metadata["expiresAt"]),
        href=_text(members["href"]),
        custom_properties=metadata.get("customProperties"),
    )
    if reference.custom_properties is not None and not isinstance(
        reference.custom_properties, dict
    ):
        raise TypeError("customProperties is not an object")
    if not _HEX64.fullmatch(reference.content_hash):
        raise ValueError("contentHash is not a SHA-256 in hex")
    if not _DOCUMENT_ID.fullmatch(reference.document_id):
        raise ValueError("documentId is not a UUID")
    if type(reference.size) is not int or reference.size < 0:
        raise ValueError("size is not a count of bytes")
    return reference


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a member is not a string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)
