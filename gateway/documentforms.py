"""A documents API upload (documentsapi.py): its multipart form read as it streams, each
file into the store as a staged upload, scanned by clamd on the way, its SHA-256 taken;
its metadata part read and checked. Nothing is committed here: the caller commits once
the whole form has been read and checked, so a refusal leaves nothing in the store.

Why not offload.py's form: that one reads a variable's form (one `data` part, the
engine's text parts beside it) for the engine; this one reads Camunda 8's (`file` parts,
a JSON `metadata` or `metadataList`) for no one but the store, a batch's files each with
its own fate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway import digest, errors, inspection, multipart
from gateway.documents import Documents, store_unavailable
from gateway.state import CONFIG, METRICS
from gateway.store import Staged, StoreError, Upload
from gateway.transfer import Transfer
from gateway.upload import counted_body

# A metadata part or a metadataList, read whole: at most this much.
JSON_PART_BYTES = 64 * 1024
# The longest timeToLive: 100 years (beyond it a date overflows Python's).
MAX_TIME_TO_LIVE_MS = 100 * 365 * 86_400_000
# type/subtype of RFC 9110's token characters, then any parameters in printable ASCII.
_MEDIA_TYPE = re.compile(
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;[\x20-\x7e]*)?"
)
_FILE_FIELDS = {False: ("file",), True: ("file", "files")}
_METADATA_FIELDS = {False: "metadata", True: "metadataList"}


@dataclass
class File:
    """One file part as it streams into the store."""

    part: multipart.Part
    upload: Upload
    scan: inspection.Scan | None
    hash: Any = field(default_factory=hashlib.sha256)
    staged: Staged | None = None
    failure: errors.GatewayError | None = None

    async def started(self) -> None:
        if self.scan is not None:
            self.failure = await self.scan.start()

    async def stop(self) -> None:
        if self.scan is not None:
            self.scan.close()
        await asyncio.shield(self.upload.stop())


@dataclass
class Form:
    """What a form brought: its files, staged or failed, and its metadata part's text."""

    files: list[File] = field(default_factory=list)
    metadata: bytearray | None = None
    scan_result: str = "-"

    async def stop_all(self, documents: Documents) -> None:
        for file in self.files:
            if file.staged is None:
                await file.stop()
            else:
                with contextlib.suppress(StoreError):  # else left for the sweep
                    await asyncio.shield(documents.store.delete(file.staged.key))


class FormRefused(Exception):
    def __init__(self, error: errors.GatewayError, result: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.result = result


async def received(
    request: web.Request, transfer: Transfer, documents: Documents, batch: bool
) -> Form:
    """The form read to its end, its files staged (a batch's refused ones marked failed).
    Raises FormRefused, or what cut the body: nothing of it is kept then."""
    config = request.app[CONFIG]
    declared, limit = request.content_length, config.max_upload_bytes
    if limit and declared is not None and declared > limit:
        raise FormRefused(errors.too_large(limit), "invalid")
    boundary = multipart.boundary_of(request.headers.get("Content-Type", ""))
    if boundary is None:
        raise FormRefused(
            errors.GatewayError(
                415,
                "UnsupportedMediaTypeException",
                "The documents API takes a multipart/form-data body with its boundary.",
            ),
            "invalid",
        )
    try:
        claimed = inspection.claims(request.headers, config)
    except digest.DigestFieldError as error:
        raise FormRefused(errors.bad_request(str(error)), "invalid") from None
    counted = request.app[METRICS]
    # The body is hashed only to check what it claims: each file's SHA-256 is taken anyway,
    # and a second pass over every byte costs a third of an upload's CPU (measured).
    claims_any = bool(claimed.content or claimed.representation)
    body_check = (
        inspection.Upload(config, counted, claimed, variable=False, raw=False)
        if config.digests == "on" and claims_any
        else None
    )
    scanner = multipart.FormScanner(boundary, report=True)
    form = Form()
    current: File | None = None
    in_metadata = False
    try:
        async for chunk in counted_body(request, transfer, config):
            if body_check is not None:
                body_check.body(chunk)
            for event in scanner.feed(chunk):
                if isinstance(event, multipart.PartBegins):
                    name = event.part.field_name
                    in_metadata = name == _METADATA_FIELDS[batch]
                    if in_metadata:
                        form.metadata = bytearray()
                    elif name in _FILE_FIELDS[batch]:
                        if form.files and not batch:
                            raise multipart.FormError("The form has more than one file part.")
                        current = _file_begins(request, documents, event.part)
                        await current.started()
                        form.files.append(current)
                    else:
                        raise multipart.FormError(
                            f"The documents API reads the parts {_FILE_FIELDS[batch][0]!r} "
                            f"and {_METADATA_FIELDS[batch]!r}, not {name!r}."
                        )
                elif isinstance(event, multipart.Content):
                    if current is not None:
                        await _file_content(current, event.data)
                    elif in_metadata and form.metadata is not None:
                        form.metadata += event.data
                        if len(form.metadata) > JSON_PART_BYTES:
                            raise multipart.FormError(
                                f"The {_METADATA_FIELDS[batch]} part is over "
                                f"{JSON_PART_BYTES} bytes."
                            )
                else:
                    if current is not None:
                        current.part = event.part
                        await _file_ends(current)
                        form.scan_result = inspection.worse(
                            form.scan_result, current.scan.result if current.scan else "-"
                        )
                    current, in_metadata = None, False
                if not batch and form.files and (failure := form.files[-1].failure):
                    # One file: its refusal is the call's, at once.
                    raise FormRefused(failure, result_of(failure))
        scanner.finish()
        if not form.files:
            raise multipart.FormError(f"The form has no {_FILE_FIELDS[batch][0]!r} part.")
        if body_check is not None:
            await body_check.finish()
    except multipart.FormError as error:
        await form.stop_all(documents)
        raise FormRefused(errors.bad_request(str(error)), "invalid") from None
    except inspection.Rejected as rejected:
        await form.stop_all(documents)
        raise FormRefused(rejected.error, "digest_mismatch") from None
    except BaseException:
        await form.stop_all(documents)
        raise
    finally:
        transfer.scan = form.scan_result
        if body_check is not None:
            transfer.digest = body_check.log_digest()
    if len(form.files) == 1 and body_check is None:  # the log line's: the file's own
        sha = form.files[0].hash.digest()
        transfer.digest = digest.format_digests({digest.DEFAULT_ALGORITHM: sha})
    return form


def _file_begins(request: web.Request, documents: Documents, part: multipart.Part) -> File:
    config = request.app[CONFIG]
    scan = None
    if config.clamd_address is not None:
        scan = inspection.Scan(config, request.app[METRICS], "upload", "documents")
    return File(part, documents.store.upload(), scan)


async def _file_content(file: File, data: bytes | memoryview) -> None:
    if file.failure is not None:
        return
    file.hash.update(data)
    if file.scan is not None and (failure := await file.scan.send(data)) is not None:
        await _file_failed(file, failure)
        return
    try:
        await file.upload.send(data)
    except StoreError as error:
        await _file_failed(file, store_unavailable(str(error)))


async def _file_ends(file: File) -> None:
    if file.failure is not None:
        return
    if file.scan is not None:
        name = file.part.filename
        subject = "The file" if name is None else f"The file {name!r}"
        if (failure := await file.scan.finish(subject)) is not None:
            await _file_failed(file, failure)
            return
    try:
        file.staged = await file.upload.finish()
    except StoreError as error:
        await _file_failed(file, store_unavailable(str(error)))


async def _file_failed(file: File, failure: errors.GatewayError) -> None:
    file.failure = failure
    await file.stop()


def result_of(error: errors.GatewayError) -> str:
    return {
        "MalwareFoundException": "malware",
        "ScanUnavailableException": "scan_unavailable",
        "DocumentStoreUnavailableException": "store_error",
        "DocumentAlreadyExistsException": "exists",
    }.get(error.type, "invalid")


@dataclass(frozen=True)
class Metadata:
    file_name: str | None = None
    content_type: str | None = None
    expires_at: datetime | None = None
    custom_properties: dict[str, Any] | None = None


def metadata(value: Any, where: str) -> Metadata:
    """A DocumentMetadata object as Camunda 8 has it (its other members are informational
    and ignored), with `timeToLive` (ms) beside `expiresAt`. Raises FormError."""
    if value is None:
        return Metadata()
    if not isinstance(value, dict):
        raise multipart.FormError(f"{where} is not a JSON object.")
    found = {}
    for name in ("fileName", "contentType"):
        if value.get(name) is not None and not isinstance(value[name], str):
            raise multipart.FormError(f"{where}.{name} is not a string.")
        found[name] = value.get(name)
    if found["contentType"] is not None and not is_media_type(found["contentType"]):
        raise multipart.FormError(
            f"{where}.contentType is not a media type: {found['contentType']!r}."
        )
    custom = value.get("customProperties")
    if custom is not None and not isinstance(custom, dict):
        raise multipart.FormError(f"{where}.customProperties is not a JSON object.")
    now = datetime.now(UTC)
    expires_at = None
    if value.get("timeToLive") is not None and value.get("expiresAt") is not None:
        raise multipart.FormError(f"{where} has both timeToLive and expiresAt: give one.")
    if (ttl := value.get("timeToLive")) is not None:
        if type(ttl) is not int or not 1 <= ttl <= MAX_TIME_TO_LIVE_MS:
            raise multipart.FormError(
                f"{where}.timeToLive is a count of milliseconds, over 0 and at most "
                f"{MAX_TIME_TO_LIVE_MS} (100 years)."
            )
        expires_at = now + timedelta(milliseconds=ttl)
    elif (at := value.get("expiresAt")) is not None:
        try:
            expires_at = datetime.fromisoformat(at) if isinstance(at, str) else None
            if expires_at is not None and expires_at.tzinfo is not None:
                expires_at = expires_at.astimezone(UTC)  # as it is written (documents.rfc3339)
        except (ValueError, OverflowError):
            expires_at = None
        if expires_at is None or expires_at.tzinfo is None:
            raise multipart.FormError(
                f"{where}.expiresAt is an RFC 3339 date-time with its offset, got {at!r}."
            )
        if expires_at <= now:
            raise multipart.FormError(f"{where}.expiresAt {at!r} has passed.")
    return Metadata(found["fileName"], found["contentType"], expires_at, custom)


def metadata_list(form: Form, batch: bool) -> list[Metadata]:
    """Each file's metadata, from the form's metadata part. Raises FormError."""
    where = _METADATA_FIELDS[batch]
    if form.metadata is None:
        return [Metadata()] * len(form.files)
    try:
        value = json.loads(bytes(form.metadata))
    except (ValueError, RecursionError):  # RecursionError: nested beyond Python's stack
        raise multipart.FormError(f"The {where} part is not JSON.") from None
    if not batch:
        return [metadata(value, where)]
    if not isinstance(value, list) or len(value) != len(form.files):
        raise multipart.FormError(
            f"{where} is a JSON array with one entry per file ({len(form.files)})."
        )
    return [metadata(item, f"{where}[{index}]") for index, item in enumerate(value)]


def media_type(part: multipart.Part) -> str | None:
    """The part's media type, if it is one (it becomes a header of every read)."""
    if part.content_type is None:
        return None
    found = part.content_type.partition(";")[0].strip()
    return found if is_media_type(found) else None


def is_media_type(value: str) -> bool:
    """type/subtype, with parameters, in printable ASCII (RFC 9110 §8.3.1)."""
    return _MEDIA_TYPE.fullmatch(value) is not None
