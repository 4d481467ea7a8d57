"""The documents API's reads (documentsapi.py): a document by its id and content hash, a
link to it anyone may follow until it expires (links.py), and the making of such links.
The content is served as any download from the store is (resolve.py)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

from aiohttp import web
from multidict import CIMultiDict

from gateway import callers, disposition, documentforms, errors, inspection, links, resolve
from gateway.documentcall import Call, answered, document, refused
from gateway.documents import Gone, document_expired, rfc3339, store_failed
from gateway.reference import Reference
from gateway.state import METRICS
from gateway.store import StoreError

# Camunda 8's default link lifetime: one hour.
DEFAULT_LINK_MILLISECONDS = 3_600_000
# A link's request, read whole: at most this much.
JSON_PART_BYTES = documentforms.JSON_PART_BYTES


async def read(call: Call) -> web.StreamResponse:
    found = await document(call)
    if isinstance(found, web.Response):
        return found
    return await _served(call, found, call.request.rel_url.query.get("disposition"))


async def _served(call: Call, found: Reference, asked: str | None) -> web.StreamResponse:
    request, config = call.request, call.config
    if asked is not None and asked not in disposition.DISPOSITION_TYPES:
        error = errors.bad_request(f"disposition is inline or attachment, got {asked!r}.")
        return refused(call, error, "invalid")
    valid = found.content_type is not None and documentforms.is_media_type(found.content_type)
    content_type = found.content_type if valid else None
    # Not kept by any cache: a document may be deleted or expire at any moment.
    headers = CIMultiDict(
        {
            "Content-Type": content_type or "application/octet-stream",
            "Cache-Control": "private, no-store",
        }
    )
    kind = disposition.disposition_type(asked, config.default_disposition, content_type)
    headers.update(disposition.download_headers(found.file_name, kind))
    scanned = config.clamd_scan_downloads == "on" and request.method != "HEAD"
    watched = (
        inspection.Download(config, request.app[METRICS], scan=True, wanted=frozenset())
        if scanned
        else None
    )
    call.transfer.document = "ok"
    response = await resolve.answer(
        request, call.transfer, found, call.documents, headers, watched, recorded=True
    )
    if call.transfer.resolved not in ("document", "-"):
        call.transfer.document = call.transfer.resolved
    return response


async def by_link(call: Call) -> web.StreamResponse:
    checked = links.verify(
        call.document_id, call.request.rel_url.raw_query_string, call.documents.keys, time.time()
    )
    if isinstance(checked, links.Refused):
        refusal = errors.GatewayError(
            403,
            "LinkRefusedException",
            "The link has expired." if checked.reason == "expired" else "The link is not valid.",
        )
        return refused(call, refusal, f"link_{checked.reason}")
    try:
        found = await call.documents.found(checked.document_id, checked.content_hash)
    except StoreError as error:
        return refused(call, store_failed(str(error)), "store_error")
    if isinstance(found, Gone):
        return refused(call, found.error, found.reason)
    return await _served(call, found, checked.disposition)


async def link(call: Call) -> web.StreamResponse:
    found = await document(call)
    if isinstance(found, web.Response):
        return found
    request, config = call.request, call.config
    asked = await _link_request(request)
    if isinstance(asked, errors.GatewayError):
        return refused(call, asked, "invalid")
    milliseconds, kind = asked
    kind = kind or config.default_disposition
    now = time.time()
    # In integers: a timeToLive of any size is cut before it is divided.
    milliseconds = min(milliseconds, config.document_link_max_seconds * 1000)
    expires = math.ceil(now + milliseconds / 1000)
    if found.expires_at is not None:
        expires = min(expires, math.floor(datetime.fromisoformat(found.expires_at).timestamp()))
        if expires <= now:  # the document expires within the second: no link outlives it
            return refused(call, document_expired(found.document_id, found.expires_at), "expired")
    if config.document_links == "store":
        # The store's own URL: the download bypasses the gateway (docs/documents.md).
        try:
            seconds = max(expires - int(now), 1)
            url = await call.documents.store.presigned(found.content_hash, seconds)
        except StoreError as error:
            return refused(call, store_failed(str(error)), "store_error")
    else:
        made = links.Link(found.document_id, found.content_hash, expires, kind)
        signed = links.query(made, call.documents.keys[0])
        url = (
            f"{callers.public_origin(request)}{config.documents_path}/{found.document_id}?{signed}"
        )
    at = rfc3339(datetime.fromtimestamp(expires, UTC))
    call.transfer.document = "ok"
    return answered(
        call, web.json_response({"url": url, "expiresAt": at}, status=201, dumps=_compact)
    )


async def _link_request(request: web.Request) -> tuple[int, str | None] | errors.GatewayError:
    """A link request's timeToLive (ms) and disposition: Camunda 8's body, and ours."""
    too_large = errors.bad_request(f"A link request is at most {JSON_PART_BYTES} bytes.")
    if request.content_length is not None and request.content_length > JSON_PART_BYTES:
        return too_large
    text = bytearray()
    async for chunk in request.content.iter_any():
        text += chunk
        if len(text) > JSON_PART_BYTES:
            return too_large
    try:
        value = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        return errors.bad_request("A link request is a JSON object.")
    if not isinstance(value, dict):
        return errors.bad_request("A link request is a JSON object.")
    milliseconds = value.get("timeToLive", DEFAULT_LINK_MILLISECONDS)
    if milliseconds is None:
        milliseconds = DEFAULT_LINK_MILLISECONDS
    if type(milliseconds) is not int or milliseconds < 1:
        return errors.bad_request("timeToLive is a count of milliseconds, over 0.")
    kind = value.get("disposition")
    if kind is not None and kind not in disposition.DISPOSITION_TYPES:
        return errors.bad_request(f"disposition is inline or attachment, got {kind!r}.")
    return milliseconds, kind


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
