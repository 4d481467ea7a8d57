"""ClamAV's daemon, spoken to with its INSTREAM command (clamd(8), "INSTREAM").

One stream per file: `zINSTREAM\\0`, then chunks, each a 4-byte big-endian length and its
bytes, then a zero length. clamd spools the chunks to its TemporaryDirectory and scans after
the zero length, so the verdict only comes at the end, and takes clamd's scan time (measured
here: 13.5 s for 1 GiB with a two-signature database, bench/scanning.py). clamd answers
`stream: OK`, `stream: <signature> FOUND`, or `<reason> ERROR` (a stream over its
StreamMaxLength is refused that way, and the connection closed, mid-stream).

The parsing is pure (`parse_address`, `parse_reply`); `Stream` is the I/O.
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

_LENGTH = struct.Struct(">I")
_END = _LENGTH.pack(0)


class ScanFailed(Exception):
    """clamd could not give a verdict: unreachable, too slow, or it refused the stream."""


@dataclass(frozen=True)
class Address:
    """Where clamd listens: `tcp://host:port` or `unix:///path/to/clamd.ctl`."""

    url: str
    host: str | None = None
    port: int | None = None
    path: str | None = None


def parse_address(url: str) -> Address:
    parts = urlsplit(url)
    if parts.scheme == "unix" and parts.path and not parts.netloc:
        return Address(url, path=parts.path)
    if parts.scheme == "tcp" and parts.hostname and not parts.path.strip("/"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if port:
            return Address(url, host=parts.hostname, port=port)
    raise ValueError(f"clamd must be tcp://host:port or unix:///path, got {url!r}")


@dataclass(frozen=True)
class Verdict:
    signature: str | None  # None: clean

    @property
    def clean(self) -> bool:
        return self.signature is None


_FOUND = re.compile(r"^stream: (?P<signature>.+) FOUND$")


def parse_reply(reply: bytes) -> Verdict:
    """clamd's answer to INSTREAM (without its NUL), or ScanFailed for anything else."""
    text = reply.decode("utf-8", errors="replace").strip()
    if text == "stream: OK":
        return Verdict(None)
    found = _FOUND.match(text)
    if found is not None:
        return Verdict(found["signature"])
    raise ScanFailed(f"clamd answered {text[:200]!r}" if text else "clamd closed the connection")


class Stream:
    """One INSTREAM scan: `send` the file's bytes as they pass, then `verdict`.

    clamd's reply is read from the start: it only speaks early to refuse the stream, and
    then resets the connection, which would throw away a reply read only after the reset."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_seconds: float
    ) -> None:
        self._writer = writer
        self._timeout_seconds = timeout_seconds
        self._reply = asyncio.ensure_future(reader.readuntil(b"\0"))

    @classmethod
    async def open(cls, address: Address, timeout_seconds: float) -> Stream:
        try:
            async with asyncio.timeout(timeout_seconds):
                if address.path is not None:
                    reader, writer = await asyncio.open_unix_connection(address.path)
                else:
                    reader, writer = await asyncio.open_connection(address.host, address.port)
                writer.write(b"zINSTREAM\0")
                await writer.drain()
        except TimeoutError:
            raise ScanFailed(f"clamd at {address.url} did not accept in time") from None
        except OSError as error:
            raise ScanFailed(f"clamd at {address.url} is unreachable: {error}") from None
        return cls(reader, writer, timeout_seconds)

    async def send(self, data: bytes | memoryview) -> None:
        """The next bytes of the file; waits while clamd is behind (backpressure)."""
        if self._reply.done():
            raise await self._refusal()
        if not data:
            return  # a zero length would end the stream
        try:
            async with asyncio.timeout(self._timeout_seconds):
                self._writer.writelines((_LENGTH.pack(len(data)), data))
                await self._writer.drain()
        except TimeoutError:
            self.close()
            raise ScanFailed("clamd stopped reading the stream") from None
        except OSError:
            raise await self._refusal() from None

    async def verdict(self) -> Verdict:
        """Ends the stream and waits for clamd's scan."""
        try:
            async with asyncio.timeout(self._timeout_seconds):
                if not self._reply.done():
                    self._writer.write(_END)
                    await self._writer.drain()
                reply = await self._reply
        except TimeoutError:
            raise ScanFailed("clamd did not answer in time") from None
        except asyncio.IncompleteReadError as error:
            reply = error.partial + b"\0"  # closed without its NUL: judged on what it said
        except (OSError, asyncio.LimitOverrunError):
            raise await self._refusal() from None
        finally:
            self.close()
        return parse_reply(reply[:-1])

    async def _refusal(self) -> ScanFailed:
        """Why clamd broke the stream off, from what it said before."""
        try:
            async with asyncio.timeout(1.0):
                said = await self._reply
        except asyncio.IncompleteReadError as error:
            said = error.partial
        except (TimeoutError, OSError, asyncio.LimitOverrunError):
            said = b""
        self.close()
        if not said:
            # Over TCP the reset that follows clamd's refusal can take its words with it.
            return ScanFailed(
                "clamd closed the connection mid-stream, as it does for a file over its "
                "StreamMaxLength"
            )
        try:
            parse_reply(said.rstrip(b"\0"))
        except ScanFailed as failure:
            return failure
        return ScanFailed("clamd answered before the end of the stream")

    def close(self) -> None:
        if not self._reply.done():
            self._reply.cancel()
        self._writer.close()
