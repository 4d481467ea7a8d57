"""The documents API's writes (documentsapi.py): `POST /documents` and `/documents/batch`
commit the files a form brought (documentforms.py) as kept documents, answered with their
references; `DELETE` removes one (documents.py: its bytes go with the sweep)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway import documentforms, errors, links, multipart
from gateway.documentcall import Call, answered, document, refused
from gateway.documents import store_failed, store_unavailable
from gateway.store import KEPT, AlreadyExists, StoreError
from gateway.upload import UploadRejected


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


async def create(call: Call) -> web.StreamResponse:
    query = call.request.rel_url.query
    if (refusal := _store_checked(call)) is not None:
        return refused(call, refusal, "invalid")
    document_id = query.get("documentId")
    if document_id is not None:
        if not links.is_document_id(document_id):
            error = errors.bad_request("documentId is a UUID, in lower case.")
            return refused(call, error, "invalid")
        try:
            taken = await call.documents.store.record(document_id) is not None
        except StoreError as failed:
            return refused(call, store_unavailable(str(failed)), "store_error")
        if taken:  # said before the body is read; the commit checks again, exclusively
            return refused(call, _exists(document_id), "exists")
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
        return refused(call, signed, documentforms.result_of(signed))
    call.transfer.document = "ok"
    href = json.loads(signed)["href"]
    return answered(call, web.Response(status=201, body=signed, headers=json_headers(href)))


async def batch(call: Call) -> web.StreamResponse:
    if (refusal := _store_checked(call)) is not None:
        return refused(call, refusal, "invalid")
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
    return answered(call, web.Response(status=status, body=body, headers=json_headers()))


async def _form_or_refusal(
    call: Call, *, batch: bool
) -> tuple[documentforms.Form, list[documentforms.Metadata]] | web.Response:
    try:
        form = await documentforms.received(call.request, call.transfer, call.documents, batch)
    except documentforms.FormRefused as refusal:
        return refused(call, refusal.error, refusal.result)
    except UploadRejected:
        assert call.transfer.rejection is not None
        return refused(call, call.transfer.rejection, "invalid")
    try:
        return form, documentforms.metadata_list(form, batch)
    except multipart.FormError as error:
        await form.stop_all(call.documents)
        return refused(call, errors.bad_request(str(error)), "invalid")


def _store_checked(call: Call) -> errors.GatewayError | None:
    asked = call.request.rel_url.query.get("storeId")
    if asked is not None and asked != call.documents.store.id:
        return errors.bad_request(f"This gateway's document store is {call.documents.store.id}.")
    return None


async def delete(call: Call) -> web.StreamResponse:
    found = await document(call)
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
            return refused(call, refusal, "variable_document")
        await call.documents.delete(found.document_id)
    except StoreError as error:
        return refused(call, store_failed(str(error)), "store_error")
    call.transfer.document = "ok"
    return answered(call, web.Response(status=204))


def json_headers(location: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if location is not None:
        headers["Location"] = location
    return headers
