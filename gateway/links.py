"""Expiring links to a document: a URL anyone may fetch until it expires, no engine
account needed. Pure: no I/O.

A link is the document's path with four query parameters, in this order and nothing else:

    /documents/<id>?contentHash=<sha-256 hex>&expires=<unix seconds>
        &disposition=<inline|attachment>&signature=<base64url HMAC-SHA256>

The signature is an HMAC-SHA256, under the first document key (`--document-key-file`; any
key of the file verifies, so a key can be rotated in), over the document, its content's
hash, the expiry and the disposition. A link is checked **as written**: the query the
gateway would write for the values it carries must be the query received, byte for byte.
So any change to a link (a character, a parameter added, moved or encoded differently)
fails, as does an expired one.

Camunda 8's links are its cloud stores' presigned URLs, and its local store makes none;
these are the gateway's own, so they work on every store, Range included (resolve.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

MARKER = b"engine-gateway link/1"
DISPOSITIONS = ("inline", "attachment")
# The parameters that make a request to a document's path a link (any one of them); a
# caller's read may ask for a disposition too.
PARAMETERS = ("expires", "signature")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DOCUMENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_QUERY = re.compile(
    r"contentHash=(?P<hash>[0-9a-f]{64})&expires=(?P<expires>[1-9][0-9]{0,11})"
    r"&disposition=(?P<disposition>inline|attachment)&signature=(?P<signature>[A-Za-z0-9_-]{43})"
)


@dataclass(frozen=True)
class Link:
    document_id: str  # a UUID, lower case
    content_hash: str  # the content's SHA-256, lower-case hex
    expires: int  # unix seconds: served until then
    disposition: str  # inline or attachment


@dataclass(frozen=True)
class Refused:
    """Why a link is not served: `altered` (not one this gateway signed, as it is) or
    `expired`."""

    reason: str


def _signature(link: Link, key: bytes) -> str:
    message = b"\n".join(
        (
            MARKER,
            link.document_id.encode(),
            link.content_hash.encode(),
            str(link.expires).encode(),
            link.disposition.encode(),
        )
    )
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def query(link: Link, key: bytes) -> str:
    """The link's query string, signed with `key`."""
    if not _HEX64.fullmatch(link.content_hash) or not _DOCUMENT_ID.fullmatch(link.document_id):
        raise ValueError("a link names a document by its UUID and SHA-256")
    if link.disposition not in DISPOSITIONS or not 0 < link.expires < 10**12:
        raise ValueError("a link's disposition is inline or attachment, its expiry positive")
    return (
        f"contentHash={link.content_hash}&expires={link.expires}"
        f"&disposition={link.disposition}&signature={_signature(link, key)}"
    )


def verify(
    document_id: str, raw_query: str, keys: Sequence[bytes], now_seconds: float
) -> Link | Refused:
    """The link `document_id` (as in the path) and `raw_query` (as received) make, if one of
    `keys` signed it and it has not expired."""
    matched = _QUERY.fullmatch(raw_query)
    if matched is None or not _DOCUMENT_ID.fullmatch(document_id):
        return Refused("altered")
    link = Link(document_id, matched["hash"], int(matched["expires"]), matched["disposition"])
    signature = matched["signature"]
    if not any(hmac.compare_digest(_signature(link, key), signature) for key in keys):
        return Refused("altered")
    if now_seconds >= link.expires:
        return Refused("expired")
    return link


def is_document_id(value: str) -> bool:
    return _DOCUMENT_ID.fullmatch(value) is not None


def is_content_hash(value: str) -> bool:
    return _HEX64.fullmatch(value) is not None


def is_link(parameters: Sequence[str]) -> bool:
    """Whether a request to a document's path, with these query parameter names, asks as a
    link (and is then checked as one, never as a caller's read)."""
    return any(name in PARAMETERS for name in parameters)
