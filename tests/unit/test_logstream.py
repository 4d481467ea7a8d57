from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import logstream

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"
MESSAGE = "method=GET route=passthrough kind=passthrough status=200 path=/engine-rest/engine"


class Writes(io.StringIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.writes.append(text)
        self.written.set()
        return super().write(text)


@contextlib.contextmanager
def configured() -> Iterator[tuple[logstream.HeldStream, Writes]]:
    """The root logger as configure() leaves it, on a stream of our own and nothing else
    (pytest's capture set aside); restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    stream = Writes()
    handler = logstream.HeldStream(stream, LINE_FORMAT)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        yield handler, stream
    finally:
        handler.close()
        root.handlers[:], root.level = saved


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_stamp_is_loggings_own_asctime(created: float) -> None:
    entry = record("gateway", logging.INFO, "x")
    entry.created, entry.msecs = created, int((created - int(created)) * 1000) + 0.0
    expected = logging.Formatter("%(asctime)s").format(entry)
    assert logstream.Formatter("%(asctime)s").format(entry) == expected


# Lines are held only on a running event loop (its timer writes them): async tests.


async def test_access_lines_are_held_and_other_lines_written_after_them() -> None:
    with configured() as (handler, stream):
        handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, "first"))
        handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, "second"))
        assert stream.getvalue() == ""
        handler.handle(record("gateway", logging.INFO, "draining 1 requests"))
        lines = stream.getvalue().splitlines()
        assert [line.rsplit(" ", 1)[-1] for line in lines] == ["first", "second", "requests"]
        assert len(stream.writes) == 1


async def test_an_access_line_above_info_is_written_at_once() -> None:
    with configured() as (handler, stream):
        handler.handle(record(logstream.ACCESS_LOGGER, logging.WARNING, "odd"))
        assert stream.getvalue().endswith("odd\n")


def test_an_access_line_outside_an_event_loop_is_written_at_once() -> None:
    with configured() as (handler, stream):
        handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, "from a thread"))
        assert stream.getvalue().endswith("from a thread\n")


async def test_no_write_holds_more_than_pipe_buf() -> None:
    with configured() as (handler, stream):
        for number in range(200):
            handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, f"{MESSAGE}?n={number}"))
        handler.flush()
        assert len(stream.writes) > 1
        assert all(len(text.encode()) <= logstream.HELD_BYTES for text in stream.writes)
        assert all(text.endswith("\n") for text in stream.writes)  # whole lines only
        assert len(stream.getvalue().splitlines()) == 200


async def test_a_line_longer_than_pipe_buf_is_written_alone() -> None:
    with configured() as (handler, stream):
        handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, "short"))
        handler.handle(record(logstream.ACCESS_LOGGER, logging.INFO, "x" * logstream.HELD_BYTES))
        handler.flush()
        assert [text.endswith("short\n") for text in stream.writes] == [True, False]


async def test_held_lines_are_written_within_the_flush_time() -> None:
    with configured() as (_, stream):
        logstream.access_writer()(MESSAGE)
        assert stream.getvalue() == ""
        await asyncio.wait_for(stream.written.wait(), 20 * logstream.FLUSH_SECONDS)
        assert stream.getvalue().endswith(f" {MESSAGE}\n")


async def test_the_written_access_line_is_the_one_logging_would_write() -> None:
    with configured() as (handler, stream):
        logging.getLogger(logstream.ACCESS_LOGGER).info("%s", MESSAGE)
        logstream.access_writer()(MESSAGE)
        handler.flush()
        through_logging, direct = stream.getvalue().splitlines()
    stamp_length = len("2026-12-02 16:52:05,482")
    assert direct[stamp_length:] == through_logging[stamp_length:]
    assert direct[stamp_length:] == f" INFO gateway.access pid={os.getpid()} {MESSAGE}"
    assert abs(_seconds(direct[:stamp_length]) - _seconds(through_logging[:stamp_length])) < 5


def _seconds(stamp: str) -> float:
    whole, milliseconds = stamp.split(",")
    return time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + int(milliseconds) / 1000


async def test_shutdown_writes_what_is_held() -> None:
    with configured() as (handler, stream):
        logstream.access_writer()(MESSAGE)
        assert stream.getvalue() == ""
        logging.shutdown([lambda: handler])
        assert stream.getvalue().endswith(f" {MESSAGE}\n")


def test_access_lines_go_through_logging_where_it_is_configured_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=logstream.ACCESS_LOGGER)
    logstream.access_writer()(MESSAGE)
    assert [entry.getMessage() for entry in caplog.records] == [MESSAGE]


async def test_access_lines_go_through_logging_when_a_handler_is_added_on_the_way() -> None:
    extra = Writes()
    added = logging.StreamHandler(extra)
    with configured() as (handler, stream):
        logging.getLogger("gateway").addHandler(added)
        try:
            logstream.access_writer()(MESSAGE)
        finally:
            logging.getLogger("gateway").removeHandler(added)
        handler.flush()
        assert extra.getvalue() == f"{MESSAGE}\n"
        assert stream.getvalue().endswith(f" {MESSAGE}\n")


async def test_access_lines_are_dropped_below_the_level() -> None:
    with configured() as (handler, stream):
        logging.getLogger().setLevel(logging.WARNING)
        logstream.access_writer()(MESSAGE)
        handler.flush()
        assert stream.getvalue() == ""
