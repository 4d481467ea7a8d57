"""--workers: several processes on the same ports, metrics added up, one drain, one fate."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.polling import exit_status, http_status, poll_until
from tests.inprocess import Stub
from tests.processes import Gateway, start_gateway, stop, with_children

DEADLINE_SECONDS = 20
REQUESTS = 200


@pytest.fixture
async def gateway(stub: Stub, tmp_path: Path) -> AsyncIterator[Gateway]:
    # /livez: the stub shares this event loop, which is blocked while we wait.
    started = start_gateway(
        tmp_path, stub.url, "--workers", "2", "--drain-timeout-seconds", "20", wait_for="/livez"
    )
    try:

        async def both_listening() -> bool:
            return len(set(_worker_pids(started))) == 2

        await poll_until(both_listening, timeout_seconds=DEADLINE_SECONDS, what="two workers")
        yield started
    finally:
        stop(started.running.process)


@pytest.fixture
async def fresh_connections() -> AsyncIterator[aiohttp.ClientSession]:
    """A new connection per request, so the kernel may hand each to another worker."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def _access_log_pids(gateway: Gateway) -> list[int]:
    text = gateway.running.log_path.read_text()
    return [int(pid) for pid in re.findall(r"gateway\.access pid=(\d+) ", text)]


def _sample(text: str, line_start: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    assert len(values) == 1, (line_start, values)
    return values[0]


async def test_workers_share_the_ports_and_every_scrape_counts_every_request(
    gateway: Gateway, fresh_connections: aiohttp.ClientSession
) -> None:
    for _ in range(REQUESTS):
        async with fresh_connections.get(gateway.base_url + "/engine-rest/engine") as response:
            assert response.status == 200

    async def all_logged() -> bool:
        return len(_access_log_pids(gateway)) == REQUESTS

    await poll_until(all_logged, timeout_seconds=DEADLINE_SECONDS, what="access log lines")
    served_by = set(_access_log_pids(gateway))
    assert len(served_by) == 2
    assert served_by < set(with_children(gateway.running.pid))

    counted = 'engine_gateway_requests_total{method="GET",outcome="complete",route="passthrough"'
    for _ in range(10):  # scrapes land on either worker: each must see both workers' counts
        async with fresh_connections.get(gateway.admin_url + "/metrics") as response:
            text = await response.text()
        assert _sample(text, counted) == REQUESTS
        assert _sample(text, "engine_gateway_requests_in_flight ") == 0


async def test_streams_in_flight_are_summed_over_live_workers(
    gateway: Gateway, stub: Stub, fresh_connections: aiohttp.ClientSession
) -> None:
    query = {"size": str(1 << 20), "gate": "1"}
    url = gateway.base_url + "/engine-rest/process-instance/i/variables/v/data"
    async with fresh_connections.get(url, params=query) as response:
        await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
        for _ in range(10):
            async with fresh_connections.get(gateway.admin_url + "/metrics") as scraped:
                text = await scraped.text()
            assert _sample(text, 'engine_gateway_streams_in_flight{direction="download"}') == 1
        stub.state.release.set()
        assert len(await response.read()) == (1 << 20) - 65536


async def test_sigterm_drains_every_worker_and_exits_0(
    gateway: Gateway, stub: Stub, fresh_connections: aiohttp.ClientSession
) -> None:
    workers = set(_worker_pids(gateway))
    assert len(workers) == 2
    query = {"size": str(1 << 20), "gate": "1"}
    async with fresh_connections.get(
        gateway.base_url + "/engine-rest/stream", params=query
    ) as response:
        await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
        os.kill(gateway.running.pid, signal.SIGTERM)

        async def refusing() -> bool:
            url = gateway.base_url + "/engine-rest/engine"
            return await http_status(fresh_connections, url) is None

        await poll_until(refusing, timeout_seconds=DEADLINE_SECONDS, what="both listeners closed")
        stub.state.release.set()
        rest = await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
    assert 65536 + len(rest) == 1 << 20
    assert await _exit_status(gateway) == 0
    assert not _any_alive(workers)


async def test_a_worker_that_dies_stops_the_gateway_with_an_error(gateway: Gateway) -> None:
    pids = sorted(set(_worker_pids(gateway)))
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    assert await _exit_status(gateway) == 1
    assert not _any_alive(pids)
    assert "exited with -9; stopping the others" in gateway.running.log_path.read_text()


def _worker_pids(gateway: Gateway) -> list[int]:
    """The processes listening on the public port: the workers, not the supervisor's other
    helpers."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    found = []
    for pid in with_children(gateway.running.pid):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.append(pid)
    return found


def _any_alive(pids: set[int] | list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


async def _exit_status(gateway: Gateway) -> int:
    return await exit_status(gateway.running.process, timeout_seconds=DEADLINE_SECONDS)
