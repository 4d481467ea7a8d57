"""The documents API (`--documents-path`, default `/documents`), served with a document
store: upload a file once, attach it to any variable, hand out a link that expires. Its
field names are Camunda 8's (`/v2/documents`), so code written for one reads the other:

    POST   /documents                          multipart `file` + optional `metadata`: 201
    POST   /documents/batch                    several `file`/`files` parts: 201, or 207
    GET    /documents/{id}?contentHash=…       the content, named; ETag, Range, HEAD
    DELETE /documents/{id}?contentHash=…       204
    POST   /documents/{id}/links?contentHash=… {"timeToLive": ms}: 201 {url, expiresAt}
    GET    /documents/{id}?contentHash=…&expires=…&disposition=…&signature=…   a link

- **The reference answered is what the engine stores**: the signed reference of an
  offloaded file (reference.py), byte for byte. Written as a File or Bytes value through
  any door, it attaches the document without its bytes (offload.py stores a reference
  this gateway signed as it is).
- **Uploads** stream into the store in constant memory, each file scanned by clamd as it
  passes and the body's digest claims checked (inspection.py), under the upload limit.
  Nothing is committed until the whole form has been read and checked: a refusal leaves
  nothing in the store. In a batch, a file clamd refuses is a failed document (207), the
  others are stored.
- **Who**: every call but a link needs a caller the engine authenticates (callers.py).
  Reading, deleting and linking also need the content hash: it works as a capability, as
  in Camunda 8, and a wrong one is answered as a document that is not there.
- **Links** (links.py) need nothing but themselves, until their expiry (at most
  `--document-link-max-seconds`, and never beyond the document's own `expiresAt`).
- **Expiry**: a document past its `expiresAt` is not served, by the API, its links or the
  variables that reference it (404 DocumentNotFoundException); the sweep deletes it.
- **Delete** removes the document at once (documents.py); its content stays while another
  document or a variable uses it, and goes with the sweep. Only a document this API made
  can be deleted here: an offloaded variable's goes with its variable.

Where Camunda 8 differs: `DELETE` needs the content hash here; `timeToLive` in the
metadata is ours (Camunda 8 takes `expiresAt` alone); the batch's per-part
`X-Document-Metadata` header (deprecated there) is not read, `metadataList` is.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway import (
    disposition,
    documentforms,
    errors,
    inspection,
    links,
    multipart,
    resolve,
    routes,
)
from gateway.config import Config
from gateway.documents import (
    Documents,
    Gone,
    document_expired,
    document_not_found,
    rfc3339,
    store_failed,
    store_unavailable,
)
from gateway.reference import Reference
from gateway.state import CALLERS, CONFIG, DOCUMENTS, METADATA_CLIENT, METRICS
from gateway.store import KEPT, AlreadyExists, StoreError
from gateway.transfer import Transfer, recorded, refuse
from gateway.upload import UploadRejected

# Camunda 8's default link lifetime: one hour.
DEFAULT_LINK_MILLISECONDS = 3_600_000
# A link's request, read whole: at most this much.
JSON_PART_BYTES = documentforms.JSON_PART_BYTES
_ID = r"(?P<id>[^/]+)"

Answer = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    """One call of the API: its request, its record, and the parts of the app it uses."""

    request: web.Request
    transfer: Transfer
    documents: Documents
    config: Config
    document_id: str = ""


@dataclass(frozen=True)
class Operation:
    label: str  # the route label (metrics, access line)
    methods: frozenset[str]
    path: re.Pattern[str]  # below --documents-path
    kind: routes.Kind
    answer: Answer


def _refused(call: Call, error: errors.GatewayError, result: str) -> web.Response:
    call.transfer.document = result
    outcome = "rejected" if error.status < 500 else "upstream_abort"
    return refuse(call.transfer, error, outcome)


async def _committed(
    call: Call, file: documentforms.File, given: documentforms.Metadata, document_id: str | None
) -> bytes | errors.GatewayError:
    """A staged file committed as a kept document; its signed reference."""
    assert file.staged is not None
    made = call.documents.made(
        file.staged.size,
        file.hash.hexdigest(),
        given.content_type or documentforms.media_type(file.part),
        given.file_name or file.part.filename,
        document_id=document_id,
        expires_at=given.expires_at,
        custom_properties=given.custom_properties,
    )
    try:
        return await call.documents.commit(
            file.staged, made, kept=True, exclusive=document_id is not None
        )
    except ValueError:
        return errors.bad_request("customProperties are too large: a reference is at most 1 KiB.")
    except AlreadyExists:
        return _exists(made.document_id)
    except StoreError as error:
        return store_unavailable(str(error))


def _exists(document_id: str) -> errors.GatewayError:
    return errors.GatewayError(
        409, "DocumentAlreadyExistsException", f"The document {document_id} exists."
    )


async def _create(call: Call) -> web.StreamResponse:
    query = call.request.rel_url.query
    if (refusal := _store_checked(call)) is not None:
        return _refused(call, refusal, "invalid")
    document_id = query.get("documentId")
    if document_id is not None:
        if not links.is_document_id(document_id):
            error = errors.bad_request("documentId is a UUID, in lower case.")
            return _refused(call, error, "invalid")
        try:
            taken = await call.documents.store.record(document_id) is not None
        except StoreError as failed:
            return _refused(call, store_unavailable(str(failed)), "store_error")
        if taken:  # said before the body is read; the commit checks again, exclusively
            return _refused(call, _exists(document_id), "exists")
    form = await _form_or_refusal(call, batch=False)
    if isinstance(form, web.Response):
        return form
    given, file = form[1][0], form[0].files[0]
    try:
        signed = await _committed(call, file, given, document_id)
    except BaseException:
        await form[0].stop_all(call.documents)
        raise
    if isinstance(signed, errors.GatewayError):
        await form[0].stop_all(call.documents)
        return _refused(call, signed, documentforms.result_of(signed))
    call.transfer.document = "ok"
    href = json.loads(signed)["href"]
    return _answered(call, web.Response(status=201, body=signed, headers=_json_headers(href)))


async def _batch(call: Call) -> web.StreamResponse:
    if (refusal := _store_checked(call)) is not None:
        return _refused(call, refusal, "invalid")
    form = await _form_or_refusal(call, batch=True)
    if isinstance(form, web.Response):
        return form
    created: list[bytes] = []
    failed: list[dict[str, Any]] = []
    outcomes: list[bytes | errors.GatewayError] = []
    try:
        for file, given in zip(form[0].files, form[1], strict=True):
            outcome = file.failure or await _committed(call, file, given, None)
            outcomes.append(outcome)
            if not isinstance(outcome, bytes):
                await documentforms.Form([file]).stop_all(call.documents)
    except BaseException:
        # Cut (the client left): what was not committed yet leaves nothing behind.
        await documentforms.Form(form[0].files[len(outcomes) :]).stop_all(call.documents)
        raise
    for file, given, outcome in zip(form[0].files, form[1], outcomes, strict=True):
        if isinstance(outcome, bytes):
            created.append(outcome)
            continue
        failed.append(
            {
                "fileName": given.file_name or file.part.filename,
                "status": outcome.status,
                "title": outcome.type,
                "detail": outcome.message,
            }
        )
    call.transfer.document = "ok" if not failed else f"partial:{len(failed)}"
    body = (
        b'{"createdDocuments":['
        + b",".join(created)
        + b'],"failedDocuments":'
        + json.dumps(failed, ensure_ascii=False, separators=(",", ":")).encode()
        + b"}"
    )
    status = 207 if failed else 201
    return _answered(call, web.Response(status=status, body=body, headers=_json_headers()))


async def _form_or_refusal(
    call: Call, *, batch: bool
) -> tuple[documentforms.Form, list[documentforms.Metadata]] | web.Response:
    try:
        form = await documentforms.received(call.request, call.transfer, call.documents, batch)
    except documentforms.FormRefused as refused:
        return _refused(call, refused.error, refused.result)
    except UploadRejected:
        assert call.transfer.rejection is not None
        return _refused(call, call.transfer.rejection, "invalid")
    try:
        return form, documentforms.metadata_list(form, batch)
    except multipart.FormError as error:
        await form.stop_all(call.documents)
        return _refused(call, errors.bad_request(str(error)), "invalid")


def _store_checked(call: Call) -> errors.GatewayError | None:
    asked = call.request.rel_url.query.get("storeId")
    if asked is not None and asked != call.documents.store.id:
        return errors.bad_request(f"This gateway's document store is {call.documents.store.id}.")
    return None


def _json_headers(location: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if location is not None:
        headers["Location"] = location
    return headers


def _answered(call: Call, response: web.Response) -> web.Response:
    call.transfer.status = response.status
    call.transfer.first_byte = time.monotonic()
    return response


# --- the document: read, delete, link ------------------------------------------------------


async def _document(call: Call) -> Reference | web.Response:
    """The document the path and its contentHash name, or the answer refusing it."""
    content_hash = call.request.rel_url.query.get("contentHash")
    if not content_hash:
        return _refused(call, errors.bad_request("contentHash is required."), "invalid")
    if not links.is_document_id(call.document_id) or not links.is_content_hash(content_hash):
        # Nothing by such a name was ever made: answered as any document that is not there.
        return _refused(call, document_not_found(call.document_id), "not_found")
    try:
        found = await call.documents.found(call.document_id, content_hash)
    except StoreError as error:
        return _refused(call, store_failed(str(error)), "store_error")
    if isinstance(found, Gone):
        return _refused(call, found.error, found.reason)
    return found


async def _read(call: Call) -> web.StreamResponse:
    found = await _document(call)
    if isinstance(found, web.Response):
        return found
    return await _served(call, found, call.request.rel_url.query.get("disposition"))


async def _served(call: Call, found: Reference, asked: str | None) -> web.StreamResponse:
    request, config = call.request, call.config
    if asked is not None and asked not in disposition.DISPOSITION_TYPES:
        error = errors.bad_request(f"disposition is inline or attachment, got {asked!r}.")
        return _refused(call, error, "invalid")
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


async def _by_link(call: Call) -> web.StreamResponse:
    checked = links.verify(
        call.document_id, call.request.rel_url.raw_query_string, call.documents.keys, time.time()
    )
    if isinstance(checked, links.Refused):
        refusal = errors.GatewayError(
            403,
            "LinkRefusedException",
            "The link has expired." if checked.reason == "expired" else "The link is not valid.",
        )
        return _refused(call, refusal, f"link_{checked.reason}")
    try:
        found = await call.documents.found(checked.document_id, checked.content_hash)
    except StoreError as error:
        return _refused(call, store_failed(str(error)), "store_error")
    if isinstance(found, Gone):
        return _refused(call, found.error, found.reason)
    return await _served(call, found, checked.disposition)


async def _delete(call: Call) -> web.StreamResponse:
    found = await _document(call)
    if isinstance(found, web.Response):
        return found
    try:
        if await call.documents.store.size(KEPT + found.document_id) is None:
            refusal = errors.GatewayError(
                409,
                "DocumentInUseException",
                f"The document {found.document_id} holds a variable's value: it goes when the "
                "variable does.",
            )
            return _refused(call, refusal, "variable_document")
        await call.documents.delete(found.document_id)
    except StoreError as error:
        return _refused(call, store_failed(str(error)), "store_error")
    call.transfer.document = "ok"
    return _answered(call, web.Response(status=204))


async def _link(call: Call) -> web.StreamResponse:
    found = await _document(call)
    if isinstance(found, web.Response):
        return found
    request, config = call.request, call.config
    asked = await _link_request(request)
    if isinstance(asked, errors.GatewayError):
        return _refused(call, asked, "invalid")
    milliseconds, kind = asked
    kind = kind or config.default_disposition
    now = time.time()
    # In integers: a timeToLive of any size is cut before it is divided.
    milliseconds = min(milliseconds, config.document_link_max_seconds * 1000)
    expires = math.ceil(now + milliseconds / 1000)
    if found.expires_at is not None:
        expires = min(expires, math.floor(datetime.fromisoformat(found.expires_at).timestamp()))
        if expires <= now:  # the document expires within the second: no link outlives it
            return _refused(call, document_expired(found.document_id, found.expires_at), "expired")
    if config.document_links == "store":
        # The store's own URL: the download bypasses the gateway (docs/documents.md).
        try:
            seconds = max(expires - int(now), 1)
            url = await call.documents.store.presigned(found.content_hash, seconds)
        except StoreError as error:
            return _refused(call, store_failed(str(error)), "store_error")
    else:
        made = links.Link(found.document_id, found.content_hash, expires, kind)
        signed = links.query(made, call.documents.keys[0])
        url = f"{_public_origin(request)}{config.documents_path}/{found.document_id}?{signed}"
    at = rfc3339(datetime.fromtimestamp(expires, UTC))
    call.transfer.document = "ok"
    return _answered(
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


def _public_origin(request: web.Request) -> str:
    """Where the caller reached the gateway: a proxy in front says so in X-Forwarded-*.
    Only the caller is answered with it, and the signature does not cover it."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# --- the table, and the door --------------------------------------------------------------


def _operation(label: str, methods: str, path: str, kind: routes.Kind, answer: Answer) -> Operation:
    return Operation(label, frozenset(methods.split()), re.compile(f"^{path}$"), kind, answer)


OPERATIONS = (
    _operation("documents_create", "POST", "", routes.Kind.UPLOAD, _create),
    _operation("documents_batch", "POST", "/batch", routes.Kind.UPLOAD, _batch),
    _operation("document", "GET HEAD", f"/{_ID}", routes.Kind.DOWNLOAD, _read),
    _operation("document_delete", "DELETE", f"/{_ID}", routes.Kind.PASSTHROUGH, _delete),
    _operation("document_link", "POST", f"/{_ID}/links", routes.Kind.PASSTHROUGH, _link),
)
# A GET of a document's path with a link's parameters: served as a link, without a caller.
BY_LINK = Operation(
    "document_by_link",
    frozenset({"GET", "HEAD"}),
    OPERATIONS[2].path,
    routes.Kind.DOWNLOAD,
    _by_link,
)
_OTHER = Operation("documents_other", frozenset(), re.compile(""), routes.Kind.PASSTHROUGH, _read)


def _matched(
    method: str, below: str, query_names: list[str]
) -> tuple[Operation, str] | frozenset[str] | None:
    """The operation and its document id; or, for a path the API has under other methods,
    those methods; or None."""
    allowed: set[str] = set()
    for operation in OPERATIONS:
        if (found := operation.path.match(below)) is None:
            continue
        if method not in operation.methods:
            allowed |= operation.methods
            continue
        document_id = found.groupdict().get("id", "")
        if operation.answer is _read and links.is_link(query_names):
            return BY_LINK, document_id
        return operation, document_id
    return frozenset(allowed) or None


async def handle(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    documents = request.app[DOCUMENTS]
    assert documents is not None  # the route is added only with a store
    below = request.rel_url.raw_path[len(config.documents_path) :]
    matched = _matched(request.method, below, list(request.rel_url.query))
    operation, document_id = matched if isinstance(matched, tuple) else (_OTHER, "")
    counted = request.app[METRICS]
    transfer = Transfer(
        request.method,
        request.rel_url.raw_path,
        routes.RouteMatch(operation.label, operation.kind),
        counted.bytes_counter("upload", operation.label),
        counted.bytes_counter("download", operation.label),
    )
    call = Call(request, transfer, documents, config, document_id)
    return await recorded(request, transfer, _answer(call, operation, matched))


async def _answer(
    call: Call, operation: Operation, matched: tuple[Operation, str] | frozenset[str] | None
) -> web.StreamResponse:
    if matched is None:
        error = errors.GatewayError(
            404, "NotFoundException", f"The documents API has no {call.transfer.path}."
        )
        return _refused(call, error, "invalid")
    if isinstance(matched, frozenset):
        error = errors.GatewayError(
            405,
            "MethodNotAllowedException",
            f"The documents API has no {call.request.method} {call.transfer.path}.",
        )
        response = _refused(call, error, "invalid")
        response.headers["Allow"] = ", ".join(sorted(matched))
        return response
    if operation is not BY_LINK:
        client = call.request.app[METADATA_CLIENT]
        refusal = await call.request.app[CALLERS].check(call.request, client)
        if refusal is not None:
            # No Basic challenge: a browser prompted here would keep the credentials and
            # send them with another site's form too.
            result = "unauthenticated" if refusal.status == 401 else "forbidden"
            return _refused(call, refusal, result)
    return await operation.answer(call)


def route_labels() -> list[str]:
    """The route labels this API counts under, for the docs and the metrics' label values."""
    return [operation.label for operation in (*OPERATIONS, BY_LINK, _OTHER)]
