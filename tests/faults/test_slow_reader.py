"""A client reading a 100 MB download at 1 KiB/s through the gateway (a real gateway
process, so its memory can be read; the STUB UPSTREAM serves the body): backpressure holds
the engine back, the gateway's memory stays flat, and other requests are served meanwhile.

The gateway has no send timeout (SECURITY.md): such a reader keeps its download, and the
engine connection behind it, for as long as it keeps reading.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from bench import proc
from tests import processes
from tests.faults.polling import poll_until
from tests.inprocess import Stub

READ_BYTES = 1024
READING_SECONDS = 8
MIB = 1 << 20


def _autotuning_max_bytes(name: str) -> int:
    """The most the kernel lets a TCP socket's buffer grow to (`tcp_rmem`/`tcp_wmem`)."""
    return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])


# What the kernel alone may hold between the engine and a reader that does not read: the
# engine's send buffer, the gateway's receive and send buffers, the reader's receive buffer
# (loopback autotuning grows them up to these maxima: measured 42 MB ahead once, with
# tcp_rmem's 32 MiB), plus the splice pipe and aiohttp's read buffer. A gateway without
# backpressure would take the whole body, twice that, at once.
ENGINE_AHEAD_BYTES = 2 * (_autotuning_max_bytes("tcp_rmem") + _autotuning_max_bytes("tcp_wmem"))
ENGINE_AHEAD_BYTES += 8 * MIB
SIZE = max(100_000_000, 2 * ENGINE_AHEAD_BYTES)
RSS_GROWTH_KIB = 16 * 1024


@pytest.mark.parametrize("length", ["declared", "chunked"], ids=["spliced", "chunk_path"])
async def test_a_1_kib_per_second_reader_holds_the_engine_back_in_constant_memory(
    length: str, stub: Stub, tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    # The stub shares this event loop: readiness is /livez, which does not ask the engine.
    gateway = processes.start_gateway(tmp_path, stub.url, wait_for="/livez")
    try:
        async with client.get(
            gateway.base_url + "/engine-rest/stream", params={"size": str(MIB)}
        ) as warm_up:
            assert len(await warm_up.read()) == MIB
        baseline_kib = proc.kib(gateway.running.pid, "VmRSS")
        stub.state.ended.clear()  # the warm-up's

        host, port = gateway.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=READ_BYTES)
        writer.write(
            f"GET /engine-rest/stream?size={SIZE}&length={length} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        received, peak_kib = 0, baseline_kib
        started = time.monotonic()
        while time.monotonic() - started < READING_SECONDS:
            received += len(await reader.read(READ_BYTES))
            peak_kib = max(peak_kib, proc.kib(gateway.running.pid, "VmRSS"))
            await asyncio.sleep(1.0)  # the reader's pace: 1 KiB per second
            async with client.get(gateway.base_url + "/engine-rest/engine") as other:
                assert other.status == 200  # everyone else is still served

        assert received <= (READING_SECONDS + 1) * READ_BYTES
        assert 0 < stub.state.sent_bytes < ENGINE_AHEAD_BYTES
        assert peak_kib - baseline_kib < RSS_GROWTH_KIB, (baseline_kib, peak_kib)

        writer.transport.abort()
        await poll_until(
            lambda: stub.state.ended.is_set(), timeout_seconds=10, what="the engine released"
        )
        assert stub.state.outcome == "cancelled"
    finally:
        processes.stop(gateway.running.process)
