"""The log's way to stderr: each line as the logging module formats it, and a request's
access line written with the next ones.

The access lines (`gateway.access` at INFO, one per request, transfer.py) are held and
written together once HELD_BYTES are waiting or FLUSH_SECONDS after the first, as nginx's
`access_log … buffer= flush=` does. Any other line is written at once, after what is held,
so lines keep the order they were logged in; logging.shutdown() (at exit) writes what is
still held.

Why not the logging module's own way for the access line: its record, handler chain and
formatter were the largest single cost of a small call after the two sockets' calls. The
gateway used 19% less CPU per `GET /engine` with `--log-level warning` (bench/floors.py).
So when the logging configuration is configure()'s own and lets the line through
(access_writer()), the line is formatted here, as the handler's Formatter would, and held
without a record. Anywhere else (in-process tests, a host application's handlers) it goes
through the logging module, as any line does.

Why not StreamHandler or MemoryHandler to hold lines: StreamHandler writes and flushes
each line on its own, and MemoryHandler holds records only to hand them on one at a time
to a handler that does the same.

Why HELD_BYTES is PIPE_BUF: with `--workers`, every worker writes to the same stderr, and
a pipe keeps a write whole only up to PIPE_BUF bytes, so two workers' lines never mix
within a line. A single longer line is written alone, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import time
from collections.abc import Callable
from typing import TextIO

ACCESS_LOGGER = "gateway.access"
FLUSH_SECONDS = 0.1
HELD_BYTES = select.PIPE_BUF

# One request's access line, its message only (transfer.py formats it).
AccessWriter = Callable[[str], None]

access_log = logging.getLogger(ACCESS_LOGGER)


class Formatter(logging.Formatter):
    """logging's Formatter, with the date and time of the second formatted once for all
    the lines within it (time.strftime was a fifth of a line's formatting)."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """`created` as logging's default `asctime`: 2026-12-02 16:52:05,482."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
        return f"{self._stamp},{int((created - second) * 1000):03d}"


class HeldStream(logging.StreamHandler[TextIO]):
    """A StreamHandler that holds access lines (see the module's docstring)."""

    def __init__(self, stream: TextIO, line_format: str) -> None:
        super().__init__(stream)
        self.line_format = line_format
        self.line_formatter = Formatter(line_format)
        self.setFormatter(self.line_formatter)
        self._held: list[str] = []
        self._held_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            access = record.name == ACCESS_LOGGER and record.levelno == logging.INFO
            self.hold(self.format(record) + self.terminator, access=access)
        except Exception:
            self.handleError(record)

    def hold(self, line: str, *, access: bool) -> None:
        """`line` written after what is held: at once, or with the next ones if `access`."""
        size = len(line) if line.isascii() else len(line.encode("utf-8", "surrogateescape"))
        if self._held_bytes + size > HELD_BYTES:
            self.flush()  # what is held first, so that no write exceeds HELD_BYTES
        self._held.append(line)
        self._held_bytes += size
        if not access:
            self.flush()
        elif self._timer is None:
            self._timer = _later(self._flush_held)
            if self._timer is None:  # logged outside the event loop (a thread, the exit)
                self.flush()

    def _flush_held(self) -> None:
        self._timer = None
        self.acquire()
        try:
            self.flush()
        except Exception:  # noqa: S110
            # A stderr that is gone: the lines are lost, and nothing would show it.
            pass
        finally:
            self.release()

    def flush(self) -> None:
        """What is held, in one write, then the stream's own flush."""
        if self._held:
            text, self._held, self._held_bytes = "".join(self._held), [], 0
            self.stream.write(text)
        super().flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        super().close()


def _later(callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """`callback` after FLUSH_SECONDS on this thread's running event loop, if it has one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(FLUSH_SECONDS, callback)


def configure(level: int, line_format: str) -> None:
    """The root logger writes to stderr through a HeldStream, at `level`; `line_format`
    takes %-style asctime, levelname, name, process and message."""
    logging.basicConfig(level=level, handlers=[HeldStream(sys.stderr, line_format)])


def access_writer() -> AccessWriter:
    """How this process writes its access lines: straight into configure()'s HeldStream if
    the logging configuration would pass them to it and nowhere else, nowhere if it would
    drop them, else through the logging module."""
    root = logging.getLogger()
    held = root.handlers[0] if len(root.handlers) == 1 else None
    between = [access_log, logging.getLogger("gateway")]
    untouched = not access_log.filters and all(
        logger.propagate and not logger.handlers for logger in between
    )
    if not isinstance(held, HeldStream) or not untouched or held.filters:
        return _through_logging
    if not access_log.isEnabledFor(logging.INFO) or held.level > logging.INFO:
        return _dropped
    fields: dict[str, object] = {
        "levelname": "INFO",
        "name": ACCESS_LOGGER,
        "process": os.getpid(),  # here, in the process that serves
    }
    line_format, stamp = held.line_format + held.terminator, held.line_formatter.stamp

    def write(message: str) -> None:
        line = line_format % {**fields, "asctime": stamp(time.time()), "message": message}
        held.acquire()
        try:
            held.hold(line, access=True)
        finally:
            held.release()

    return write


def _through_logging(message: str) -> None:
    access_log.info("%s", message)


def _dropped(_: str) -> None:
    return None
