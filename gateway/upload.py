"""The body going up: piped to the engine as it arrives, counted against the limit, and by
its kind checked and inspected on the way.

The kinds:
- a multipart form on an upload route: validated as the engine will read it
  (multipart.py), its closing delimiter held back until the form is checked;
- a raw (non-multipart) body on a variable's `…/data`: wrapped into the engine's form;
- JSON with files, on a JSON door (routes.JSON_DOORS): its File and Bytes values found and
  decoded as the engine decodes them (jsonvalues.py), each chunk released only once what
  it holds has been checked, so the body's end waits for every value's verdict;
- anything else: passed as it is, only counted.

Each inspected kind (inspection.py, jsonfiles.py) holds the body's last bytes until every
check has passed, so a refused upload never reaches the engine whole and the engine writes
nothing.
A check that fails inside the body stream records why on the Transfer and raises
`UploadRejected`, which ends the engine request; proxy.py then answers with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway import (
    digest,
    errors,
    inspection,
    jsonfiles,
    jsonoffload,
    jsonvalues,
    multipart,
    offload,
    routes,
)
from gateway.config import Config
from gateway.state import CONFIG, DOCUMENTS, METRICS
from gateway.transfer import CHUNK_BYTES, SMALL_BODY_BYTES, Transfer, Upstream, without_parameters

Chunks = AsyncIterator[bytes | memoryview]
T = TypeVar("T")

# Query parameters the gateway reads and the engine never sees.
RAW_UPLOAD_PARAMETERS = frozenset({"filename", "valueType"})
# java.util.Base64.Decoder's messages (JDK 17), as Operaton passes them on.
_JAVA_BASE64_ERRORS = (
    "Illegal base64 character",
    "Input byte array has",
    "Input byte[] should at least have 2 bytes",
    "Last unit does not have enough valid bits",
)


class UploadRejected(Exception):
    """Raised inside a body stream to abort the engine request; the reason is on Transfer."""


@dataclass(frozen=True)
class Body:
    """What goes to the engine: the body (None: the request has none), the path and query
    it goes to, and the inspection that watches it."""

    data: Chunks | None
    path_qs: str
    inspected: inspection.Upload | None = None
    scanned: jsonvalues.ValueScanner | None = None  # a JSON door's, once it has been read

    async def engine_refusal(self, upstream: Upstream) -> errors.GatewayError | None:
        """The engine's opaque refusal of this upload, said clearly: Operaton answers 500
        IllegalArgumentException for a File value java.util.Base64 refuses (Camunda 7
        stores it), so that answer becomes a 400 naming the value. The answer is read only
        when it is small and declared, so download.py can still send it as it is."""
        explained = self.scanned.strict_file_error if self.scanned is not None else None
        length = upstream.content_length
        if explained is None or upstream.status != 500 or length is None:
            return None
        if length > SMALL_BODY_BYTES:
            return None
        try:
            answer = json.loads(await upstream.read())
        except (ValueError, aiohttp.ClientError):
            return None
        if not isinstance(answer, dict) or answer.get("type") != "IllegalArgumentException":
            return None
        message = answer.get("message")
        if isinstance(message, str) and message.startswith(_JAVA_BASE64_ERRORS):
            return errors.bad_request(explained)
        return None

    def answer_headers(self, status: int) -> dict[str, str]:
        """Headers the engine's answer gets for this upload."""
        stored = self.inspected.stored if self.inspected is not None else None
        if stored and 200 <= status < 300:
            # RFC 9530 §3: the variable's representation now, as GET …/data will send it.
            return {"Repr-Digest": digest.format_digests(stored)}
        return {}


async def body_up(
    request: web.Request, transfer: Transfer, outgoing: CIMultiDict[str], path_qs: str
) -> Body | errors.GatewayError:
    """The engine's request body, by its kind; or the error to refuse the request with
    (`transfer.rejection_outcome` its outcome). `outgoing` (the engine's request headers)
    is adjusted where the kind changes the body. An offloaded value is in the store when
    this returns (offload.py)."""
    config = request.app[CONFIG]
    declared = request.content_length
    if config.max_upload_bytes and declared is not None and declared > config.max_upload_bytes:
        return errors.too_large(config.max_upload_bytes)
    incoming = counted_body(request, transfer, config) if request.body_exists else _empty()
    passed = Body(incoming if request.body_exists else None, path_qs)
    kind = _KINDS.get(transfer.route.kind)
    if kind is None:
        return passed
    return await kind(request, transfer, outgoing, incoming, path_qs) or passed


async def _form_or_raw(
    request: web.Request,
    transfer: Transfer,
    outgoing: CIMultiDict[str],
    incoming: AsyncIterator[bytes],
    path_qs: str,
) -> Body | errors.GatewayError | None:
    """An upload route's body: a multipart form, or a variable's raw body."""
    config = request.app[CONFIG]
    try:
        claimed = inspection.claims(request.headers, config)
    except digest.DigestFieldError as invalid:
        return errors.bad_request(str(invalid))
    variable = transfer.route.label == "variable_data"
    content_type = request.headers.get("Content-Type")
    if multipart.is_multipart_form(content_type):
        boundary = multipart.boundary_of(content_type or "")
        if boundary is None:
            return errors.bad_request("The multipart Content-Type has no boundary.")
        check = multipart.check_variable_form if variable else None
        inspected = _upload_inspection(request, claimed, variable=variable, raw=False)
        if variable and request.app[DOCUMENTS] is not None:
            return await _offloaded_form(
                request, transfer, outgoing, incoming, boundary, inspected, path_qs
            )
        scanner = multipart.FormScanner(boundary, report=inspected is not None)
        body = _validated_body(incoming, scanner, check, transfer, inspected)
        return Body(body, path_qs, inspected)
    if variable:
        try:
            wrapped = _raw_upload(request, outgoing)
        except multipart.FormError as error:
            return errors.bad_request(str(error))
        inspected = _upload_inspection(request, claimed, variable=True, raw=True)
        path_qs = str(without_parameters(request.rel_url, RAW_UPLOAD_PARAMETERS))
        documents = request.app[DOCUMENTS]
        if documents is not None and wrapped.value_type in offload.OFFLOADED_TYPES:
            decision = await offload.decide(documents, request.content_length, incoming)
            incoming = decision.body
            if decision.offloaded:
                return await _offloaded_raw(
                    request, transfer, outgoing, incoming, inspected, wrapped, path_qs
                )
        return Body(_wrapped_body(incoming, wrapped, transfer, inspected), path_qs, inspected)
    return None


async def _offloaded_raw(
    request: web.Request,
    transfer: Transfer,
    outgoing: CIMultiDict[str],
    incoming: AsyncIterator[bytes],
    inspected: inspection.Upload | None,
    wrapped: multipart.WrappedForm,
    path_qs: str,
) -> Body | errors.GatewayError:
    documents = request.app[DOCUMENTS]
    assert documents is not None
    try:
        data = await _offloaded(
            transfer,
            offload.raw(request, documents, transfer, outgoing, incoming, inspected, wrapped),
        )
    finally:
        _inspection_done(inspected, transfer)
    if isinstance(data, errors.GatewayError):
        return data
    return Body(data, path_qs, inspected)


async def _offloaded_form(
    request: web.Request,
    transfer: Transfer,
    outgoing: CIMultiDict[str],
    incoming: AsyncIterator[bytes],
    boundary: bytes,
    inspected: inspection.Upload | None,
    path_qs: str,
) -> Body | errors.GatewayError:
    documents = request.app[DOCUMENTS]
    assert documents is not None
    scanner = multipart.FormScanner(boundary, report=True)
    try:
        formed = await _offloaded(transfer, offload.form(documents, incoming, scanner, inspected))
    finally:
        _inspection_done(inspected, transfer)
    if isinstance(formed, errors.GatewayError):
        return formed
    transfer.offloaded, transfer.offload_door = int(formed.offloaded), "multipart"
    outgoing["Content-Type"] = formed.wrapped.content_type
    outgoing["Content-Length"] = str(formed.length)
    # They describe the client's form, which the engine does not get: checked here instead.
    outgoing.popall("Content-Digest", None)
    outgoing.popall("Repr-Digest", None)
    return Body(formed.data, path_qs, inspected)


async def _json(
    request: web.Request,
    transfer: Transfer,
    outgoing: CIMultiDict[str],
    incoming: AsyncIterator[bytes],
    path_qs: str,
) -> Body | errors.GatewayError | None:
    """A JSON door's body, when it has typed values and the engine reads it as JSON."""
    route = transfer.route
    if not (request.body_exists and route.places_up):
        return None
    if not jsonvalues.read_as_json(request.headers.get("Content-Type")):
        return None
    config = request.app[CONFIG]
    documents = request.app[DOCUMENTS]
    limit = config.json_string_limit_chars
    if documents is not None and documents.offload_above_bytes * 4 // 3 + 4 < limit:
        limit = 0  # a value the engine's limit would refuse goes to the store instead
    scanner = jsonvalues.ValueScanner(route.places_up, limit, root_variable=route.variable_name)
    offloading = jsonoffload.JsonOffload(documents) if documents is not None else None
    files = jsonfiles.JsonFiles(
        scanner,
        config,
        request.app[METRICS],
        direction="upload",
        route=route.label,
        listener=offloading.listen if offloading is not None else None,
    )
    if offloading is None:
        return Body(_json_body(incoming, files, transfer), path_qs, scanned=scanner)
    try:
        made = await _offloaded(transfer, jsonoffload.json_body(incoming, files, offloading))
    finally:
        files.close()
        transfer.scan = files.scan_result
        transfer.json_files, transfer.json_file_bytes = files.files, files.file_bytes
    if isinstance(made, errors.GatewayError):
        return made
    data, length = made
    transfer.offloaded, transfer.offload_door = offloading.offloaded, "json"
    outgoing["Content-Length"] = str(length)
    # The text goes as UTF-8 (offload.py), which Jackson finds whatever a charset says.
    outgoing["Content-Type"] = "application/json"
    outgoing.popall("Content-Digest", None)  # it described the client's body
    return Body(data, path_qs, scanned=scanner)


async def _offloaded(transfer: Transfer, offloading: Awaitable[T]) -> T | errors.GatewayError:
    """What an offload made (offload.py, jsonoffload.py), or the error to refuse the request
    with, its outcome on `transfer`."""
    try:
        return await offloading
    except offload.Refused as refused:
        transfer.rejection_outcome = refused.outcome
        return refused.error
    except (multipart.FormError, jsonvalues.InvalidValue) as error:
        return errors.bad_request(str(error))
    except UploadRejected:
        assert transfer.rejection is not None
        return transfer.rejection


Kind = Callable[
    [web.Request, Transfer, CIMultiDict[str], AsyncIterator[bytes], str],
    Awaitable[Body | errors.GatewayError | None],
]
_KINDS: dict[routes.Kind, Kind] = {routes.Kind.UPLOAD: _form_or_raw, routes.Kind.JSON: _json}


async def counted_body(
    request: web.Request, transfer: Transfer, config: Config
) -> AsyncIterator[bytes]:
    while True:
        try:
            # A client that stops sending would hold the engine request open for ever.
            async with asyncio.timeout(config.client_body_timeout_seconds):
                chunk = await request.content.read(CHUNK_BYTES)
        except TimeoutError:
            transfer.rejection = errors.client_too_slow(config.client_body_timeout_seconds)
            transfer.rejection_outcome = "timeout"
            raise UploadRejected from None
        if not chunk:
            return
        transfer.bytes_up += len(chunk)
        transfer.count_up(len(chunk))
        if config.max_upload_bytes and transfer.bytes_up > config.max_upload_bytes:
            transfer.rejection = errors.too_large(config.max_upload_bytes)
            raise UploadRejected
        yield chunk


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def _validated_body(
    body: AsyncIterator[bytes],
    scanner: multipart.FormScanner,
    check: Callable[[list[multipart.Part]], None] | None,
    transfer: Transfer,
    inspected: inspection.Upload | None,
) -> Chunks:
    """The body unchanged, with the closing delimiter held back until the form is checked:
    an invalid form is cut before its end, so the engine can never complete it. With an
    inspection, the closing delimiter (and whatever follows it) waits for the client's last
    byte and the inspection's verdict.

    Only the few bytes that may start a delimiter are held; the rest of each chunk goes on
    as a memoryview, so a large upload is not copied on its way through."""
    held = b""  # received, not yet released to the engine
    sent = 0
    approved = False
    waits = inspected is not None and inspected.active
    try:
        async for chunk in body:
            if inspected is not None:
                inspected.body(chunk)
            if approved:
                if not waits:
                    yield chunk
                    continue
                held += chunk
                if len(held) > inspection.EPILOGUE_LIMIT_BYTES:
                    raise multipart.FormError(
                        "More than 64 KiB follow the closing boundary of the form."
                    )
                continue
            events = scanner.feed(chunk)
            if inspected is not None:
                for event in events:
                    await inspected.event(event)
            if scanner.closed:
                if check is not None:
                    check(scanner.parts)
                approved = True
                assert scanner.close_offset is not None
                release = (scanner.close_offset if waits else sent + len(held) + len(chunk)) - sent
            else:
                release = scanner.releasable() - sent
            from_held = max(0, min(release, len(held)))
            from_chunk = max(0, release - len(held))
            if from_held:
                yield held[:from_held]
            if from_chunk:
                yield memoryview(chunk)[:from_chunk]
            held = held[from_held:] + chunk[from_chunk:]
            sent += from_held + from_chunk
        if not approved:
            parts = scanner.finish()
            if check is not None:
                check(parts)
        if inspected is not None:
            await inspected.finish()
        if held:
            yield held
    except multipart.FormError as error:
        transfer.rejection = errors.bad_request(str(error))
        raise UploadRejected from error
    except inspection.Rejected as rejected:
        transfer.rejection = rejected.error
        raise UploadRejected from rejected
    finally:
        _inspection_done(inspected, transfer)


async def _json_body(
    body: AsyncIterator[bytes], files: jsonfiles.JsonFiles, transfer: Transfer
) -> Chunks:
    """The body unchanged; each chunk goes on once the values it ends have been checked
    (their base64, their length, clamd's verdict), so the engine never has the end of a
    body with a refused value in it. What follows the root value is passed: the engine's
    parser never reads it. Nor is a body the scanner cannot read as JSON refused here: the
    engine's parser cannot read it either (the scanner reads every body json.loads reads,
    fuzzed), so nothing of it can be stored, and the engine's own answer (401, 400 with
    Jackson's words) passes as for any other call."""
    try:
        async for chunk in body:
            await files.feed(chunk)
            yield chunk
        await files.finish()
    except jsonvalues.InvalidValue as error:
        transfer.rejection = errors.bad_request(str(error))
        raise UploadRejected from error
    except inspection.Rejected as rejected:
        transfer.rejection = rejected.error
        raise UploadRejected from rejected
    finally:
        files.close()
        transfer.scan = files.scan_result
        transfer.json_files, transfer.json_file_bytes = files.files, files.file_bytes


def _upload_inspection(
    request: web.Request, claimed: inspection.Claims, *, variable: bool, raw: bool
) -> inspection.Upload | None:
    """The upload's inspection, unless digests and scanning are both off."""
    config = request.app[CONFIG]
    if config.digests != "on" and config.clamd_address is None:
        return None
    return inspection.Upload(config, request.app[METRICS], claimed, variable=variable, raw=raw)


def _inspection_done(inspected: inspection.Upload | None, transfer: Transfer) -> None:
    if inspected is not None:
        inspected.close()
        transfer.digest, transfer.scan = inspected.log_digest(), inspected.scan_result


def _raw_upload(request: web.Request, outgoing: CIMultiDict[str]) -> multipart.WrappedForm:
    """The engine's form around a raw (non-multipart) body, and the headers for it."""
    query = request.rel_url.query
    filename = query.get("filename")
    value_type = query.get("valueType") or ("File" if filename is not None else "Bytes")
    wrapped = multipart.wrap_raw_body(
        value_type=value_type, filename=filename, content_type=request.headers.get("Content-Type")
    )
    multipart.check_variable_form(
        [
            multipart.Part("data", filename, None),
            multipart.Part("valueType", None, None, value_type.encode()),
        ]
    )
    outgoing["Content-Type"] = wrapped.content_type
    # They describe the raw body, which the engine gets inside a form: checked here instead.
    outgoing.popall("Content-Digest", None)
    outgoing.popall("Repr-Digest", None)
    if request.content_length is not None:
        outgoing["Content-Length"] = str(wrapped.length(request.content_length))
    else:
        outgoing.popall("Content-Length", None)
    return wrapped


async def _wrapped_body(
    body: AsyncIterator[bytes],
    wrapped: multipart.WrappedForm,
    transfer: Transfer,
    inspected: inspection.Upload | None,
) -> AsyncIterator[bytes]:
    """The raw body inside the engine's form; with an inspection, the form's end waits for
    its verdict, so a refused body never reaches the engine complete."""
    yield wrapped.head
    try:
        if inspected is not None:
            await inspected.event(multipart.PartBegins(wrapped.part))
        async for chunk in body:
            if inspected is not None:
                await inspected.event(multipart.Content(chunk))
            yield chunk
        if inspected is not None:
            await inspected.event(multipart.PartEnds(wrapped.part))
            await inspected.finish()
    except inspection.Rejected as rejected:
        transfer.rejection = rejected.error
        raise UploadRejected from rejected
    finally:
        _inspection_done(inspected, transfer)
    yield wrapped.tail
