"""The files carried in JSON bodies: each File and Bytes value jsonvalues.py finds, counted
and, with clamd, scanned while it streams, in an upload as in an answer.

A value is teed to clamd before its type may be known (`value` may come first in its
object); its verdict counts only if its object makes it a file, and only if the bytes
scanned are the ones the engine stores (jsonvalues.Stored.exact). A value of
JSON_SCAN_AFTER_BYTES or less waits for its object's end instead, and is sent whole if it
is a file, so a String value that merely looks like base64 costs clamd nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway import errors, jsonvalues, metrics
from gateway.config import Config
from gateway.inspection import Rejected, Scan, worse

JSON_SCAN_AFTER_BYTES = 64 * 1024


class JsonFiles:
    """One JSON body's File and Bytes values, read with its scanner: each counted and, with
    clamd, scanned, as the engine will store it (in an upload) or as it sends it (in a
    download). `feed` and `finish` raise jsonvalues.InvalidValue where the engine would
    refuse a value, and Rejected where the body must not go on; a body that is not JSON
    is not read further (the engine's parser cannot read it either)."""

    def __init__(
        self,
        scanner: jsonvalues.ValueScanner,
        config: Config,
        counted: metrics.Metrics,
        *,
        direction: str,
        route: str,
        listener: Callable[[jsonvalues.Event], Awaitable[None]] | None = None,
    ) -> None:
        self.scanner = scanner
        self._listener = listener  # told each event after it was counted and scanned
        self._reading = True
        self._config = config
        self._counted = counted
        self._direction = direction
        self._route = route
        self._scanning = config.clamd_address is not None
        self._scan: Scan | None = None  # the current value's, once it is large enough
        self._held = bytearray()  # the current value's bytes, until then
        self._scans: dict[int, Scan] = {}  # values ended, until their object ends
        self._small: dict[int, bytes] = {}  # values that ended before they reached clamd
        self.files = 0
        self.file_bytes = 0
        self.scan_result = "-"  # for the log line: the worst of the files' results

    @property
    def reading(self) -> bool:
        """Whether the body is still read: not once its root value ended, or it is not JSON."""
        return self._reading and not self.scanner.done

    async def feed(self, data: bytes | memoryview) -> None:
        await self._read(lambda: self.scanner.feed(data))

    async def finish(self) -> None:
        await self._read(self.scanner.finish)

    async def _read(self, read: Callable[[], list[jsonvalues.Event]]) -> None:
        if not self._reading or self.scanner.done:
            return
        try:
            events = read()
        except jsonvalues.NotJson:
            self._reading = False
            return
        for event in events:
            await self._event(event)
            if self._listener is not None:
                await self._listener(event)

    async def _event(self, event: jsonvalues.Event) -> None:
        if isinstance(event, jsonvalues.Decoded):
            if self._scanning:
                await self._decoded(event.data)
        elif isinstance(event, jsonvalues.ValueBegins):
            self._scan, self._held = None, bytearray()
        elif isinstance(event, jsonvalues.ValueEnds):
            await self._value_ends(event.index)
        else:
            await self._typed_value_ends(event.stored)

    async def _decoded(self, data: bytes) -> None:
        if self._scan is None:
            self._held += data
            if len(self._held) < JSON_SCAN_AFTER_BYTES:
                return
            self._scan = Scan(self._config, self._counted, self._direction, "json")
            data, self._held = bytes(self._held), bytearray()
            if await self._scan.start() is not None:
                return  # failed: its result says how, for the value's object to judge
        if self._scan.result == "-":
            await self._scan.send(data)

    async def _value_ends(self, index: int) -> None:
        scan, self._scan = self._scan, None
        if scan is None:
            if self._scanning:
                self._small[index] = bytes(self._held)
            self._held = bytearray()
            return
        if scan.result == "-":
            await scan.finish(None)
        self._scans[index] = scan

    async def _typed_value_ends(self, stored: jsonvalues.Stored | None) -> None:
        small, self._small = self._small, {}
        scans, self._scans = self._scans, {}
        if stored is None:
            return
        self.files += 1
        self.file_bytes += stored.decoded_bytes
        self._counted.json_file(
            self._direction, self._route, stored.type_name, stored.decoded_bytes
        )
        if not self._scanning:
            return
        scan = scans.get(stored.index)
        if stored.index in small:
            scan = Scan(self._config, self._counted, self._direction, "json")
            if await scan.start() is None and await scan.send(small[stored.index]) is None:
                await scan.finish(None)
            scan.close()
        if scan is None:
            return
        if not stored.exact and scan.result == "clean":
            # Its type came after it and the two decoders read it differently: what clamd
            # passed is not what the engine stores.
            scan.fail("its base64 reads two ways and its type came after it")
        self.scan_result = worse(self.scan_result, scan.result)
        error = self._error(scan, stored)
        if error is not None:
            raise Rejected(error)

    def _error(self, scan: Scan, stored: jsonvalues.Stored) -> errors.GatewayError | None:
        subject = f"The {stored.type_name} value"
        if stored.variable is not None:
            subject += f" of variable {stored.variable!r}"
        if stored.filename is not None:
            subject += f" (file {stored.filename!r})"
        if scan.signature is not None:
            return errors.malware_found(scan.signature, subject, self._direction)
        if scan.result == "failed_closed":
            return errors.scan_unavailable(scan.failure or "clamd gave no verdict")
        return None

    def close(self) -> None:
        for scan in (self._scan, *self._scans.values()):
            if scan is not None:
                scan.close()
        self._scan = None
        self._scans = {}


class JsonAnswer:
    """A JSON answer's Bytes values (routes.JsonDoor.down), scanned as the answer streams,
    with --clamd-scan-downloads: the same steps as inspection.Download, for download.py."""

    def __init__(
        self,
        config: Config,
        counted: metrics.Metrics,
        route: str,
        places: tuple[jsonvalues.Place, ...],
        variable: str | None,
    ) -> None:
        scanner = jsonvalues.ValueScanner(places, string_limit_chars=0, root_variable=variable)
        self._files = JsonFiles(scanner, config, counted, direction="download", route=route)
        self._reading = True  # False: a value this scanner cannot decode (the engine's own)

    async def start(self) -> errors.GatewayError | None:
        return None  # clamd is asked per value, as each one ends

    async def content(self, data: bytes | memoryview) -> errors.GatewayError | None:
        return await self._checked(lambda: self._files.feed(data))

    async def finish(self) -> errors.GatewayError | None:
        return await self._checked(self._files.finish)

    async def _checked(self, read: Callable[[], Awaitable[None]]) -> errors.GatewayError | None:
        if not self._reading:
            return None
        try:
            await read()
        except jsonvalues.InvalidValue:
            self._reading = False
        except Rejected as rejected:
            return rejected.error
        return None

    def digests(self) -> dict[str, bytes]:
        return {}

    def log_digest(self) -> str:
        return "-"

    @property
    def scan_result(self) -> str:
        return self._files.scan_result

    @property
    def files(self) -> int:
        return self._files.files

    @property
    def file_bytes(self) -> int:
        return self._files.file_bytes

    def close(self) -> None:
        self._files.close()
