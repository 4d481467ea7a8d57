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

This module is the door: the table of operations and who may call them. The writes are
documentwrites.py (their forms documentforms.py), the reads and links documentreads.py,
and what both see of a call documentcall.py.

Where Camunda 8 differs: `DELETE` needs the content hash here; `timeToLive` in the
metadata is ours (Camunda 8 takes `expiresAt` alone); the batch's per-part
`X-Document-Metadata` header (deprecated there) is not read, `metadataList` is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway import documentreads, documentwrites, errors, links, routes
from gateway.documentcall import Call, refused
from gateway.state import CALLERS, CONFIG, DOCUMENTS, METADATA_CLIENT, METRICS
from gateway.transfer import Transfer, recorded

_ID = r"(?P<id>[^/]+)"

Answer = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    label: str  # the route label (metrics, access line)
    methods: frozenset[str]
    path: re.Pattern[str]  # below --documents-path
    kind: routes.Kind
    answer: Answer


# --- the table, and the door --------------------------------------------------------------


def _operation(label: str, methods: str, path: str, kind: routes.Kind, answer: Answer) -> Operation:
    return Operation(label, frozenset(methods.split()), re.compile(f"^{path}$"), kind, answer)


_READ, _WRITE, _OTHER_KIND = routes.Kind.DOWNLOAD, routes.Kind.UPLOAD, routes.Kind.PASSTHROUGH
OPERATIONS = (
    _operation("documents_create", "POST", "", _WRITE, documentwrites.create),
    _operation("documents_batch", "POST", "/batch", _WRITE, documentwrites.batch),
    _operation("document", "GET HEAD", f"/{_ID}", _READ, documentreads.read),
    _operation("document_delete", "DELETE", f"/{_ID}", _OTHER_KIND, documentwrites.delete),
    _operation("document_link", "POST", f"/{_ID}/links", _OTHER_KIND, documentreads.link),
)
# A GET of a document's path with a link's parameters: served as a link, without a caller.
BY_LINK = Operation(
    "document_by_link", frozenset({"GET", "HEAD"}), OPERATIONS[2].path, _READ, documentreads.by_link
)
# What no operation matched, for its metrics and access line (never answered by `answer`).
_OTHER = Operation("documents_other", frozenset(), re.compile(""), _OTHER_KIND, documentreads.read)


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
        if operation.answer is documentreads.read and links.is_link(query_names):
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
        return refused(call, error, "invalid")
    if isinstance(matched, frozenset):
        error = errors.GatewayError(
            405,
            "MethodNotAllowedException",
            f"The documents API has no {call.request.method} {call.transfer.path}.",
        )
        response = refused(call, error, "invalid")
        response.headers["Allow"] = ", ".join(sorted(matched))
        return response
    if operation is not BY_LINK:
        client = call.request.app[METADATA_CLIENT]
        refusal = await call.request.app[CALLERS].check(call.request, client)
        if refusal is not None:
            # No Basic challenge: a browser prompted here would keep the credentials and
            # send them with another site's form too.
            result = "unauthenticated" if refusal.status == 401 else "forbidden"
            return refused(call, refusal, result)
    return await operation.answer(call)


def route_labels() -> list[str]:
    """The route labels this API counts under, for the docs and the metrics' label values."""
    return [operation.label for operation in (*OPERATIONS, BY_LINK, _OTHER)]
