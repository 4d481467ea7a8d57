"""The streaming core: one request's path from the client to the engine and back.

Read top to bottom, `handle` is the whole data path. Bodies are never held: the request body
is piped to the engine as it arrives, the response body is copied chunk by chunk, and
`await response.write()` waits for the client, so a slow reader slows the engine read
(backpressure) instead of filling memory.

Failure rules (DESIGN.md invariants):
- no answer from the engine → 502/504 in the engine's JSON error shape;
- the engine's body breaks off → the client's connection is aborted, so a short body can
  never look complete (no final chunk, or fewer bytes than Content-Length);
- the client goes away → aiohttp cancels this handler (handler_cancellation), which closes
  the engine connection mid-request, so a half-sent upload is never committed; logged 499;
- the drain timeout runs out (app.py) → the same cancellation, counted as `drain_abort`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import (
    digest,
    disposition,
    errors,
    headers,
    inspection,
    metadata,
    metrics,
    multipart,
    routes,
    splice,
)
from gateway.config import Config
from gateway.state import (
    CLIENT,
    CONFIG,
    CUTTING,
    ENGINE_UNREACHABLE,
    METADATA_CLIENT,
    METRICS,
)

# Measured: large reads and writes keep per-byte work out of Python's loop (DESIGN.md).
CHUNK_BYTES = 256 * 1024
# Bodies up to this size are read whole and sent with the headers (bench/compare.py).
SMALL_BODY_BYTES = 64 * 1024

CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer

access_log = logging.getLogger("gateway.access")


@dataclass
class Transfer:
    """What one request moved, for its log line and its metrics."""

    method: str
    path: str
    route: routes.RouteMatch
    count_up: metrics.Increment  # per-chunk byte counters, labels bound once per request
    count_down: metrics.Increment
    started: float = field(default_factory=time.monotonic)
    first_byte: float | None = None  # when the response's headers went out
    status: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    outcome: str = "complete"
    filename_source: str = "-"  # where a download's name came from (metadata.Naming)
    digest: str = "-"  # sha-256 of the content moved, where it was computed (inspection.py)
    scan: str = "-"  # clamd's verdict: clean, found:<signature>, failed_open, failed_closed
    # Why the gateway cut an upload short (set inside the body stream, read by _proxy).
    rejection: errors.GatewayError | None = None
    rejection_outcome: str = "rejected"

    def sent_down(self, size: int) -> None:
        """`size` more body bytes went to the client: logged and counted."""
        self.bytes_down += size
        self.count_down(size)

    @property
    def stream(self) -> str | None:
        """The direction of the binary body this request streams, if any."""
        return _STREAMS.get(self.route.kind)

    def log(self) -> None:
        access_log.info(
            "method=%s route=%s kind=%s status=%d bytes_up=%d bytes_down=%d filename_source=%s "
            "digest=%s scan=%s duration_seconds=%.3f outcome=%s path=%s",
            self.method,
            self.route.label,
            self.route.kind.value,
            self.status,
            self.bytes_up,
            self.bytes_down,
            self.filename_source,
            self.digest,
            self.scan,
            time.monotonic() - self.started,
            self.outcome,
            self.path,
        )

    def record(self, counted: metrics.Metrics) -> None:
        size = None
        if self.stream is not None and self.method != "HEAD":
            size = (self.stream, self.bytes_up if self.stream == "upload" else self.bytes_down)
        counted.finished(
            method=self.method,
            route=self.route.label,
            status=self.status,
            outcome=self.outcome,
            duration_seconds=time.monotonic() - self.started,
            first_byte_seconds=None if self.first_byte is None else self.first_byte - self.started,
            size=size,
        )


_STREAMS = {routes.Kind.UPLOAD: "upload", routes.Kind.DOWNLOAD: "download"}


async def handle(request: web.Request) -> web.StreamResponse:
    raw_path = request.rel_url.raw_path
    route = routes.classify(request.method, raw_path)
    counted = request.app[METRICS]
    transfer = Transfer(
        request.method,
        raw_path,
        route,
        counted.bytes_counter("upload", route.label),
        counted.bytes_counter("download", route.label),
    )
    streams = None if transfer.stream is None else counted.streams.labels(transfer.stream)
    counted.in_flight.inc()
    if streams is not None:
        streams.inc()
    try:
        response = await _proxy(request, transfer)
    except asyncio.CancelledError:
        if request.app[CUTTING].is_set():
            # Still running when the drain timeout ran out: cut by the shutdown, and the
            # client's connection closes without a clean end, as for an engine that dies.
            transfer.outcome = "drain_abort"
            transfer.status = transfer.status or errors.shutting_down().status
        else:
            transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    except ConnectionResetError:
        # The client went away while we wrote to it.
        transfer.status, transfer.outcome = CLIENT_CLOSED_REQUEST, "client_abort"
        raise
    finally:
        counted.in_flight.dec()
        if streams is not None:
            streams.dec()
        transfer.log()
        transfer.record(counted)
    return response


async def _proxy(request: web.Request, transfer: Transfer) -> web.StreamResponse:
    config = request.app[CONFIG]

    # 1. Only /engine-rest, and only paths the engine would see as written.
    if routes.resource_path(transfer.path) is None:
        return _refuse(transfer, errors.not_found(transfer.path), "rejected")
    if routes.escapes_api_root(transfer.path):
        error = errors.bad_request(f"Dot segments are not allowed in paths: {transfer.path!r}")
        return _refuse(transfer, error, "rejected")

    # 2. The engine's request: same method, raw path and query; end-to-end headers.
    #    A download may ask how to be presented (?disposition=): that is ours, not the engine's.
    raw_path_qs = request.rel_url.raw_path_qs
    requested = None
    if transfer.route.kind is routes.Kind.DOWNLOAD and DISPOSITION in request.rel_url.query:
        requested = request.rel_url.query[DISPOSITION]
        if requested not in disposition.DISPOSITION_TYPES:
            error = errors.bad_request(
                f"Query parameter {DISPOSITION} must be inline or attachment, got {requested!r}."
            )
            return _refuse(transfer, error, "rejected")
        raw_path_qs = str(_without_parameters(request.rel_url, {DISPOSITION}))
    outgoing = headers.upstream_request_headers(
        request.headers,
        client_address=request.remote,
        scheme=request.scheme,
        host=request.headers.get("Host"),
    )

    # 3. Body up: piped as it arrives, counted against the limit; uploads checked on the way
    #    (a multipart form is validated, a raw body is wrapped into the engine's form), and
    #    inspected: hashed, its digests checked, its files scanned (inspection.py).
    declared = request.content_length
    if config.max_upload_bytes and declared is not None and declared > config.max_upload_bytes:
        return _refuse(transfer, errors.too_large(config.max_upload_bytes), "rejected")
    incoming = _counted_body(request, transfer, config) if request.body_exists else _empty()
    body: AsyncIterator[bytes | memoryview] | None = incoming if request.body_exists else None
    inspected: inspection.Upload | None = None
    if transfer.route.kind is routes.Kind.UPLOAD:
        try:
            claimed = inspection.claims(request.headers, config)
        except digest.DigestFieldError as invalid:
            return _refuse(transfer, errors.bad_request(str(invalid)), "rejected")
        variable = transfer.route.label == "variable_data"
        content_type = request.headers.get("Content-Type")
        if multipart.is_multipart_form(content_type):
            boundary = multipart.boundary_of(content_type or "")
            if boundary is None:
                error = errors.bad_request("The multipart Content-Type has no boundary.")
                return _refuse(transfer, error, "rejected")
            check = multipart.check_variable_form if variable else None
            inspected = _upload_inspection(request, claimed, variable=variable, raw=False)
            scanner = multipart.FormScanner(boundary, report=inspected is not None)
            body = _validated_body(incoming, scanner, check, transfer, inspected)
        elif variable:
            try:
                wrapped = _raw_upload(request, outgoing)
            except multipart.FormError as error:
                return _refuse(transfer, errors.bad_request(str(error)), "rejected")
            inspected = _upload_inspection(request, claimed, variable=True, raw=True)
            body = _wrapped_body(incoming, wrapped, transfer, inspected)
            raw_path_qs = str(_without_parameters(request.rel_url, RAW_UPLOAD_PARAMETERS))
    target = URL(str(config.upstream_origin) + raw_path_qs, encoded=True)
    # The engine takes uploads only as POST; PUT (curl -T) is the gateway's raw upload.
    method = "POST" if transfer.route.kind is routes.Kind.UPLOAD else request.method
    # aiohttp would add its own defaults; what the client didn't send, the engine doesn't get.
    skip = {"User-Agent", "Accept", "Accept-Encoding", "Content-Type"} - set(outgoing)

    try:
        upstream = await request.app[CLIENT].request(
            method,
            target,
            headers=outgoing,
            data=body,
            skip_auto_headers=skip,
            allow_redirects=False,
        )
    except aiohttp.ServerTimeoutError as error:
        return _refuse(
            transfer, errors.upstream_timeout(str(error) or type(error).__name__), "timeout"
        )
    except aiohttp.ClientError as error:
        if request.app[CUTTING].is_set():
            # The drain timeout ran out while the body streamed: aiohttp ends the body, the
            # engine gets an incomplete request and writes nothing.
            return _refuse(transfer, errors.shutting_down(), "drain_abort")
        if transfer.rejection is not None:
            # We cut the upload (invalid form, too large, stalled): the engine got an
            # incomplete body and writes nothing; the client learns why.
            return _refuse(transfer, transfer.rejection, transfer.rejection_outcome)
        if isinstance(error, aiohttp.ClientResponseError):
            # The response parser refused the engine's status line or headers.
            return _refuse(transfer, errors.upstream_invalid(error.message))
        if isinstance(error, aiohttp.ClientConnectorError):
            request.app[ENGINE_UNREACHABLE].set()
        return _refuse(transfer, errors.upstream_unreachable(str(error) or type(error).__name__))

    # 4. Headers down. A binary download is named safely, from the engine's header if it is
    #    exact, else from the engine's metadata; any other Content-Disposition is made safe.
    async with upstream:
        outgoing_headers = headers.downstream_response_headers(upstream.headers)
        watched: inspection.Download | None = None
        if transfer.route.kind is routes.Kind.DOWNLOAD and upstream.status == 200:
            outgoing_headers.update(await _download_headers(request, transfer, upstream, requested))
            watched = _watched_download(request, upstream, config)
        elif "Content-Disposition" in outgoing_headers:
            engine_value = outgoing_headers["Content-Disposition"]
            outgoing_headers["Content-Disposition"] = disposition.rebuild(engine_value)
        if inspected is not None and inspected.stored and 200 <= upstream.status < 300:
            # RFC 9530 §3: the variable's representation now, as GET …/data will send it.
            outgoing_headers["Repr-Digest"] = digest.format_digests(inspected.stored)
        transfer.status = upstream.status
        reason = None if upstream.reason is None else headers.sendable(upstream.reason)
        try:
            return await _body_down(
                request, transfer, upstream, outgoing_headers, reason, watched, config
            )
        finally:
            if watched is not None:
                watched.close()
                transfer.digest, transfer.scan = watched.log_digest(), watched.scan_result


async def _body_down(
    request: web.Request,
    transfer: Transfer,
    upstream: aiohttp.ClientResponse,
    outgoing_headers: CIMultiDict[str],
    reason: str | None,
    watched: inspection.Download | None,
    config: Config,
) -> web.StreamResponse:
    """5. The engine's body to the client. A watched download (inspection.Download) is
    hashed and scanned on the way, its last chunk held until clamd has passed it."""
    if watched is not None and (refusal := await watched.start()) is not None:
        return _refuse(transfer, refusal, "rejected")

    # A small body of declared length (the JSON calls) is read whole and goes out with
    # the headers in one write: bounded memory, one system call instead of three.
    # A watched chunked download (scanned, or its digest asked for) that ends within the
    # same size is answered whole too: with its Repr-Digest, or a clean 422 if infected.
    length = upstream.content_length
    whole: bytes | None = None
    ahead = b""  # read ahead, not yet sent
    if request.method != "HEAD":
        try:
            if length is not None and length <= SMALL_BODY_BYTES:
                whole = await upstream.read()
            elif length is None and watched is not None:
                ahead, ended = await _read_ahead(upstream, config.read_timeout_seconds)
                whole, ahead = (ahead, b"") if ended else (None, ahead)
        except TimeoutError as error:  # aiohttp's ServerTimeoutError is one too
            detail = str(error) or type(error).__name__
            return _refuse(transfer, errors.upstream_timeout(detail), "timeout")
        except aiohttp.ClientError as error:
            detail = str(error) or type(error).__name__
            return _refuse(transfer, errors.upstream_unreachable(detail))
    if whole is not None:
        if watched is not None:
            refusal = await watched.content(whole) or await watched.finish()
            if refusal is not None:
                return _refuse(transfer, refusal, "rejected")
            computed = watched.digests()  # none with --digests off
            if computed and _wants_digest(request) and "Content-Encoding" not in upstream.headers:
                outgoing_headers["Repr-Digest"] = digest.format_digests(computed)
        transfer.sent_down(len(whole))
        transfer.first_byte = time.monotonic()
        return web.Response(
            status=upstream.status, reason=reason, headers=outgoing_headers, body=whole
        )

    response = web.StreamResponse(status=upstream.status, reason=reason)
    response.headers.extend(outgoing_headers)
    await response.prepare(request)
    transfer.first_byte = time.monotonic()
    if request.method == "HEAD":
        return response

    # A large body of known length goes socket to socket in the kernel (splice.py), unless
    # it is watched; any other in chunks. Either way with backpressure.
    if watched is None and splice.eligible(request, upstream, config.splice == "on"):
        try:
            await splice.relay(
                request, response, upstream, transfer.sent_down, config.read_timeout_seconds
            )
        except TimeoutError:
            _abort_client(request, transfer, "timeout")
            return response
        except ConnectionResetError:
            raise  # the client left: handled in `handle`
        except (splice.UpstreamEnded, aiohttp.ClientError, OSError):
            _abort_client(request, transfer, "upstream_abort")
            return response
        await response.write_eof()
        return response
    held: bytes | None = None  # a watched download's latest chunk, until the next one comes
    while True:
        try:
            # aiohttp's own read timeout (sock_read) is lost, and the read waits for
            # ever, when its C parser fails on the engine's chunk framing mid-body
            # (3.14.5, tests/faults/test_lying_upstream.py): this deadline holds anyway.
            async with asyncio.timeout(config.read_timeout_seconds):
                chunk, ahead = (
                    (ahead, b"") if ahead else (await upstream.content.read(CHUNK_BYTES), b"")
                )
        except TimeoutError:  # aiohttp's ServerTimeoutError is one too
            _abort_client(request, transfer, "timeout")
            return response
        except aiohttp.ClientError:
            _abort_client(request, transfer, "upstream_abort")
            return response
        if not chunk:
            break
        if watched is not None:
            if await watched.content(chunk) is not None:
                _abort_client(request, transfer, "rejected")
                return response
            chunk, held = held or b"", chunk
            if not chunk:
                continue
        # Raises ConnectionResetError when the client has gone: handled in `handle`.
        await response.write(chunk)
        transfer.sent_down(len(chunk))
    if watched is not None:
        if await watched.finish() is not None:
            # Found, or no verdict and failing closed: the client never gets the end.
            _abort_client(request, transfer, "rejected")
            return response
        if held:
            await response.write(held)
            transfer.sent_down(len(held))
    await response.write_eof()
    return response


def _watched_download(
    request: web.Request, upstream: aiohttp.ClientResponse, config: Config
) -> inspection.Download | None:
    """A download is watched when it is scanned, or when it may be read whole (declared
    small, or chunked and its digest asked for) and so hashed for nearly nothing. A large
    one is not hashed: it keeps os.splice, and its digest could not be sent anyway."""
    scanned = config.clamd_scan_downloads == "on" and request.method != "HEAD"
    length = upstream.content_length
    whole = length <= SMALL_BODY_BYTES if length is not None else _wants_digest(request)
    if not scanned and not (whole and config.digests == "on"):
        return None
    wanted = frozenset[str]()
    if _wants_digest(request):
        with contextlib.suppress(digest.DigestFieldError):  # a bad preference asks for nothing
            wanted = digest.parse_wanted("Want-Repr-Digest", request.headers["Want-Repr-Digest"])
    return inspection.Download(config, request.app[METRICS], scan=scanned, wanted=wanted)


async def _read_ahead(
    upstream: aiohttp.ClientResponse, read_timeout_seconds: float
) -> tuple[bytes, bool]:
    """Up to SMALL_BODY_BYTES + 1 of the body, and whether that was all of it."""
    ahead = b""
    while len(ahead) <= SMALL_BODY_BYTES:
        async with asyncio.timeout(read_timeout_seconds):
            chunk = await upstream.content.read(SMALL_BODY_BYTES + 1 - len(ahead))
        if not chunk:
            return ahead, True
        ahead += chunk
    return ahead, False


def _wants_digest(request: web.Request) -> bool:
    return "Want-Repr-Digest" in request.headers


class UploadRejected(Exception):
    """Raised inside a body stream to abort the engine request; the reason is on Transfer."""


async def _counted_body(
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
) -> AsyncIterator[bytes | memoryview]:
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


# Query parameters the gateway reads and the engine never sees.
RAW_UPLOAD_PARAMETERS = frozenset({"filename", "valueType"})
DISPOSITION = "disposition"


def _without_parameters(url: URL, names: frozenset[str] | set[str]) -> URL:
    kept = [(k, v) for k, v in url.query.items() if k not in names]
    return url.with_query(kept) if kept else url.with_query(None)


async def _download_headers(
    request: web.Request,
    transfer: Transfer,
    upstream: aiohttp.ClientResponse,
    requested: str | None,
) -> dict[str, str]:
    config = request.app[CONFIG]
    engine = disposition.parse_engine_disposition(upstream.headers.get("Content-Disposition"))
    found = None
    if engine.quality is not disposition.Quality.EXACT and transfer.route.lookup is not None:
        found = await metadata.lookup(
            request.app[METADATA_CLIENT],
            config.upstream_origin,
            transfer.path,
            transfer.route,
            metadata.credentials(request.headers),
        )
    naming = metadata.choose_filename(
        engine, found, transfer.route.variable_name, name_bytes=config.bytes_filename == "var"
    )
    transfer.filename_source = naming.source
    presented = disposition.disposition_type(
        requested, config.default_disposition, upstream.headers.get("Content-Type")
    )
    return disposition.download_headers(naming.filename, presented)


def _refuse(
    transfer: Transfer, error: errors.GatewayError, outcome: str = "upstream_abort"
) -> web.Response:
    transfer.status, transfer.outcome = error.status, outcome
    transfer.first_byte = time.monotonic()
    return errors.error_response(error)


def _abort_client(request: web.Request, transfer: Transfer, outcome: str) -> None:
    """Cut the client's connection so the short body is visibly incomplete."""
    transfer.outcome = outcome
    if request.transport is not None:
        request.transport.abort()
