"""What a transfer is checked for while it streams: its RFC 9530 digests and, with clamd, malware.

An upload's inspection is fed the multipart scanner's events (multipart.py), or the same
events made up for a raw body, and the body itself as it arrives. It hashes the content the
engine will store (the last `data` part of a variable form, or a raw body), tees each
scanned part to its own clamd stream, and raises `Rejected` where the upload must not
complete. The proxy holds back the end of the body (the closing delimiter) until `finish`
has passed, so a rejected upload never reaches the engine whole, and nothing is written.

What the digests mean (RFC 9530 §2, §3):
- `Content-Digest` is always the request body exactly as sent (for a form, the form).
- `Repr-Digest` is the representation: for a raw upload the body; for a variable form it
  may be the stored file (what `GET …/data` will return, and what the answer's own
  `Repr-Digest` describes) or, read strictly, the form as sent: either one passes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from gateway import clamd, digest, errors, metrics, multipart
from gateway.config import Config

# The engine never reads past the closing delimiter; what a client sends after it is held
# with it, and only this much of it.
EPILOGUE_LIMIT_BYTES = 64 * 1024

# The forms' parts whose content the engine stores: the variable's `data`, an attachment's
# `content`, and every part with a filename (deployment resources).
_STORED_FIELDS = frozenset({"data", "content"})


class Rejected(Exception):
    """The upload must not complete; `error` is what the client is told."""

    def __init__(self, error: errors.GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Claims:
    """The digests a request claims and the ones it wants back."""

    representation: dict[str, bytes]
    content: dict[str, bytes]
    wanted: frozenset[str]


NO_CLAIMS = Claims({}, {}, frozenset())


def claims(headers: CIMultiDictProxy[str], config: Config) -> Claims:
    """From the request's fields (none with --digests off); raises DigestFieldError for a
    malformed one."""
    if config.digests != "on":
        return NO_CLAIMS

    def field(name: str) -> str | None:
        values = headers.getall(name, [])
        return ", ".join(values) if values else None  # RFC 9110 §5.3: one list

    repr_value, content_value = field("Repr-Digest"), field("Content-Digest")
    want_value = field("Want-Repr-Digest")
    return Claims(
        digest.parse_digests("Repr-Digest", repr_value) if repr_value else {},
        digest.parse_digests("Content-Digest", content_value) if content_value else {},
        digest.parse_wanted("Want-Repr-Digest", want_value) if want_value else frozenset(),
    )


def is_scanned(part: multipart.Part) -> bool:
    return part.field_name in _STORED_FIELDS or part.filename is not None


_SIGNATURE_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+-]")


def _loggable(signature: str) -> str:
    return _SIGNATURE_UNSAFE.sub("_", signature)[:120]


class Scan:
    """One file's clamd stream, with --clamd-failure applied: each step returns the error
    to answer with, or None to go on (clean so far, or failed open)."""

    def __init__(self, config: Config, counted: metrics.Metrics, direction: str, door: str) -> None:
        assert config.clamd_address is not None
        self._address = config.clamd_address
        self._timeout_seconds = config.clamd_timeout_seconds
        self._fail_open = config.clamd_failure == "open"
        self._counted = counted
        self._direction = direction
        self._door = door
        self._scan_bytes = counted.scanned_bytes_counter(direction)
        self._stream: clamd.Stream | None = None
        self._started = 0.0
        self.result = "-"  # for the log line: clean, found:<signature>, failed_open/closed
        self.signature: str | None = None  # what clamd found
        self.failure: str | None = None  # why clamd gave no verdict

    async def start(self) -> errors.GatewayError | None:
        self._started = time.monotonic()
        try:
            self._stream = await clamd.Stream.open(self._address, self._timeout_seconds)
        except clamd.ScanFailed as failure:
            return self._failed(failure)
        return None

    async def send(self, data: bytes | memoryview) -> errors.GatewayError | None:
        if self._stream is None:
            return None  # failed open: the rest goes unscanned
        try:
            await self._stream.send(data)
        except clamd.ScanFailed as failure:
            self._stream = None
            return self._failed(failure)
        self._scan_bytes(len(data))
        return None

    async def finish(self, subject: str | None) -> errors.GatewayError | None:
        """The verdict; `subject` names what is scanned in the error (None: the transfer)."""
        if self._stream is None:
            return None
        stream, self._stream = self._stream, None
        try:
            verdict = await stream.verdict()
        except clamd.ScanFailed as failure:
            return self._failed(failure)
        duration = time.monotonic() - self._started
        if verdict.signature is not None:
            self._counted.scan_finished(self._direction, self._door, "found", duration)
            self.result = "found:" + _loggable(verdict.signature)
            self.signature = verdict.signature
            return errors.malware_found(verdict.signature, subject, self._direction)
        self._counted.scan_finished(self._direction, self._door, "clean", duration)
        self.result = "clean"
        return None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def fail(self, reason: str) -> None:
        """clamd's verdict does not judge what is stored: as if clamd had given none (and
        counted as such, besides the scan clamd did)."""
        self._failed(clamd.ScanFailed(reason))

    def _failed(self, failure: clamd.ScanFailed) -> errors.GatewayError | None:
        self.failure = str(failure)
        self.result = "failed_open" if self._fail_open else "failed_closed"
        duration = time.monotonic() - self._started
        self._counted.scan_finished(self._direction, self._door, self.result, duration)
        return None if self._fail_open else errors.scan_unavailable(str(failure))


class Upload:
    """One upload's digests and scans, fed as it streams."""

    def __init__(
        self,
        config: Config,
        counted: metrics.Metrics,
        claimed: Claims,
        *,
        variable: bool,
        raw: bool,
    ) -> None:
        assert variable or not raw, "a raw body is always a variable's"
        self._claimed = claimed
        self._counted = counted
        self._raw = raw
        self._variable = variable
        self._config = config
        self._address = config.clamd_address
        on = self._digests_on = config.digests == "on"
        # The stored content's digests: for the answer, the log line and the claims on it.
        self._stored_algorithms = (
            digest.needed(claimed.representation, claimed.wanted, claimed.content if raw else ())
            if on and variable
            else None
        )
        # The body's, for a form: Content-Digest, Repr-Digest read strictly, and the log
        # line of a form that is not a variable's.
        body_algorithms = set(claimed.content) | set(claimed.representation)
        if not variable:
            body_algorithms.add(digest.DEFAULT_ALGORITHM)
        hashed = on and not raw and body_algorithms
        self._body = digest.Hashes(frozenset(body_algorithms)) if hashed else None
        self._current: digest.Hashes | None = None
        self.stored: dict[str, bytes] | None = None  # the last stored part's digests
        self._scan: Scan | None = None
        self.scan_result = "-"  # for the log line: the worst of the parts' results

    @property
    def hashes_stored(self) -> bool:
        """Whether `stored` will hold the stored content's SHA-256 (digests on)."""
        return self._stored_algorithms is not None

    @property
    def active(self) -> bool:
        """Whether there is anything to wait for at the end of the body."""
        return self._address is not None or (
            self._digests_on and bool(self._claimed.representation or self._claimed.content)
        )

    def body(self, chunk: bytes | memoryview) -> None:
        """The request body as it arrives (a form's, with its delimiters)."""
        if self._body is not None:
            self._body.update(chunk)

    async def event(self, event: multipart.Event) -> None:
        if isinstance(event, multipart.Content):
            if self._current is not None:
                self._current.update(event.data)
            if self._scan is not None:
                self._raise(await self._scan.send(event.data))
        elif isinstance(event, multipart.PartBegins):
            if self._stored_algorithms is not None and event.part.field_name == "data":
                self._current = digest.Hashes(self._stored_algorithms)
            if self._address is not None and is_scanned(event.part):
                door = "raw" if self._raw else "multipart"
                self._scan = Scan(self._config, self._counted, "upload", door)
                self._raise(await self._scan.start())
        else:
            if self._current is not None:
                self.stored = self._current.digests()
                self._current = None
            if self._scan is not None:
                scan, self._scan = self._scan, None
                filename = event.part.filename
                error = await scan.finish(None if filename is None else f"The file {filename!r}")
                self.scan_result = worse(self.scan_result, scan.result)
                self._raise(error)

    def _raise(self, error: errors.GatewayError | None) -> None:
        if error is not None:
            if self._scan is not None:
                self.scan_result = self._scan.result
            raise Rejected(error)

    async def finish(self) -> None:
        """At the end of the body, before its last bytes go: the claims checked."""
        if not self._digests_on:
            return
        body = self.stored if self._raw else (self._body.digests() if self._body else {})
        self._check("Content-Digest", self._claimed.content, [body])
        stored = [self.stored] if self.stored is not None and not self._raw else []
        self._check("Repr-Digest", self._claimed.representation, [*stored, body])

    def log_digest(self) -> str:
        """The digest of the content moved, for the log line."""
        if self._variable:
            return _log_digest(self.stored)
        return _log_digest(self._body.digests() if self._body is not None else None)

    def close(self) -> None:
        """The upload ended some other way: a scan still open is dropped."""
        if self._scan is not None:
            self._scan.close()
            self._scan = None

    def _check(
        self, field_name: str, claimed: dict[str, bytes], candidates: list[dict[str, bytes] | None]
    ) -> None:
        if not claimed:
            return
        if any(c is not None and digest.mismatched(claimed, c) is None for c in candidates):
            return
        self._counted.digest_mismatch(field_name)
        computed = candidates[0] or {}
        algorithm = digest.mismatched(claimed, computed) or digest.DEFAULT_ALGORITHM
        value = digest.format_digests({algorithm: computed.get(algorithm, b"")}).split("=", 1)[1]
        raise Rejected(errors.digest_mismatch(field_name, algorithm, value))


class Download:
    """A download's digest and, with --clamd-scan-downloads, its scan. The proxy holds its
    last chunk until `finish` has passed: an infected download's connection is cut before
    the client has it all."""

    def __init__(
        self, config: Config, counted: metrics.Metrics, *, scan: bool, wanted: frozenset[str]
    ) -> None:
        hashed = config.digests == "on"
        self._hashes = digest.Hashes(digest.needed(wanted)) if hashed else None
        self._scan = Scan(config, counted, "download", "data") if scan else None

    @property
    def scans(self) -> bool:
        return self._scan is not None

    async def start(self) -> errors.GatewayError | None:
        """Before the response's headers go, so that a clamd it cannot reach is a clean 503."""
        return await self._scan.start() if self._scan is not None else None

    async def content(self, data: bytes | memoryview) -> errors.GatewayError | None:
        if self._hashes is not None:
            self._hashes.update(data)
        return await self._scan.send(data) if self._scan is not None else None

    async def finish(self) -> errors.GatewayError | None:
        return await self._scan.finish(None) if self._scan is not None else None

    def digests(self) -> dict[str, bytes]:
        return self._hashes.digests() if self._hashes is not None else {}

    def log_digest(self) -> str:
        return _log_digest(self.digests())

    @property
    def scan_result(self) -> str:
        return self._scan.result if self._scan is not None else "-"

    files = 0  # a binary download carries no values in JSON
    file_bytes = 0

    def close(self) -> None:
        if self._scan is not None:
            self._scan.close()


def worse(seen: str, result: str) -> str:
    """The log line's scan result for a transfer of several files: a found signature over
    anything, any other outcome over none or clean."""
    return result if seen in ("-", "clean") or result.startswith("found") else seen


def _log_digest(moved: dict[str, bytes] | None) -> str:
    """The sha-256 of what moved, as its field would carry it; `-` when not computed."""
    if not moved or digest.DEFAULT_ALGORITHM not in moved:
        return "-"
    return digest.format_digests({digest.DEFAULT_ALGORITHM: moved[digest.DEFAULT_ALGORITHM]})
