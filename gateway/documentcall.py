"""One call of the documents API (documentsapi.py), as both directions' handlers see it:
its request and record, the document its path and contentHash name, and how it is
answered or refused (the result goes to the metrics and the access line)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from gateway import errors, links
from gateway.config import Config
from gateway.documents import Documents, Gone, document_not_found, store_failed
from gateway.reference import Reference
from gateway.store import StoreError
from gateway.transfer import Transfer, refuse


@dataclass
class Call:
    """One call of the API: its request, its record, and the parts of the app it uses."""

    request: web.Request
    transfer: Transfer
    documents: Documents
    config: Config
    document_id: str = ""


def refused(call: Call, error: errors.GatewayError, result: str) -> web.Response:
    call.transfer.document = result
    outcome = "rejected" if error.status < 500 else "upstream_abort"
    return refuse(call.transfer, error, outcome)


def answered(call: Call, response: web.Response) -> web.Response:
    call.transfer.status = response.status
    call.transfer.first_byte = time.monotonic()
    return response


async def document(call: Call) -> Reference | web.Response:
    """The document the path and its contentHash name, or the answer refusing it."""
    content_hash = call.request.rel_url.query.get("contentHash")
    if not content_hash:
        return refused(call, errors.bad_request("contentHash is required."), "invalid")
    if not links.is_document_id(call.document_id) or not links.is_content_hash(content_hash):
        # Nothing by such a name was ever made: answered as any document that is not there.
        return refused(call, document_not_found(call.document_id), "not_found")
    try:
        found = await call.documents.found(call.document_id, content_hash)
    except StoreError as error:
        return refused(call, store_failed(str(error)), "store_error")
    if isinstance(found, Gone):
        return refused(call, found.error, found.reason)
    return found
