"""Metrics, read from the gateway's own registry while and after bodies move (stub upstream,
not an engine): bytes counted per chunk as they pass, every outcome labelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway import app as gateway_app
from gateway.state import METRICS
from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, InProcessGateway, Stub, start_gateway

DEADLINE_SECONDS = 10
MIB = 1 << 20
DOWNLOAD = "/engine-rest/process-instance/p1/variables/doc/data"
UPLOAD = "/engine-rest/task/t1/variables/doc/data"


def sample(gateway: InProcessGateway, name: str, **labels: str) -> float:
    value = gateway.servers.public.app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def transferred(gateway: InProcessGateway, direction: str) -> float:
    return sample(
        gateway,
        "engine_gateway_transferred_bytes_total",
        direction=direction,
        route="variable_data",
    )


def finished(gateway: InProcessGateway, outcome: str, status_class: str, method: str) -> float:
    return sample(
        gateway,
        "engine_gateway_requests_total",
        method=method,
        route="variable_data",
        status_class=status_class,
        outcome=outcome,
    )


async def test_download_bytes_are_counted_while_they_move(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    size = 8 * MIB
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params={"size": size, "gate": ""}) as got:
            # The stub holds everything after its first 64 KiB until released.
            await got.content.readexactly(65536)
            assert 65536 <= transferred(gateway, "download") < size
            streams = sample(gateway, "engine_gateway_streams_in_flight", direction="download")
            assert streams == 1
            stub.state.release.set()
            assert len(await got.read()) == size - 65536
        await poll_until(
            lambda: finished(gateway, "complete", "2xx", "GET") == 1,
            timeout_seconds=DEADLINE_SECONDS,
            what="the request counted",
        )
        assert transferred(gateway, "download") == size
        assert sample(gateway, "engine_gateway_streams_in_flight", direction="download") == 0
        size_count = sample(
            gateway,
            "engine_gateway_transfer_size_bytes_bucket",
            direction="download",
            route="variable_data",
            le="1.6777216e+07",
        )
        assert size_count == 1
        first_byte = sample(
            gateway,
            "engine_gateway_time_to_first_byte_seconds_count",
            method="GET",
            route="variable_data",
        )
        assert first_byte == 1


async def test_upload_bytes_are_counted_while_they_move(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    first, rest = b"a" * MIB, b"b" * (3 * MIB)
    async with gateway_for(stub.url) as gateway:
        counted_first = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield first
            await poll_until(
                lambda: transferred(gateway, "upload") >= len(first),
                timeout_seconds=DEADLINE_SECONDS,
                what="the first megabyte counted",
            )
            assert transferred(gateway, "upload") < len(first) + len(rest)
            counted_first.set()
            yield rest

        headers = {"Content-Type": "application/octet-stream"}
        async with client.post(gateway.url + UPLOAD, data=body(), headers=headers) as response:
            assert response.status == 204
        assert counted_first.is_set()
        assert transferred(gateway, "upload") == len(first) + len(rest)
        assert finished(gateway, "complete", "2xx", "POST") == 1


@pytest.mark.parametrize(
    ("query", "overrides", "outcome"),
    [
        ({"size": str(4 * MIB), "die_after": str(MIB)}, {}, "upstream_abort"),
        ({"size": str(4 * MIB), "stall_after": str(MIB)}, {"read_timeout_seconds": 0.5}, "timeout"),
    ],
)
async def test_a_download_cut_by_the_engine_is_counted_as_such(
    query: dict[str, str],
    overrides: dict[str, float],
    outcome: str,
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    async with gateway_for(stub.url, **overrides) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params=query) as response:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        await poll_until(
            lambda: finished(gateway, outcome, "2xx", "GET") == 1,
            timeout_seconds=DEADLINE_SECONDS,
            what=f"a {outcome} counted",
        )
        assert MIB <= transferred(gateway, "download") < 4 * MIB


async def test_a_client_leaving_is_counted_as_client_abort(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        response = await client.get(gateway.url + DOWNLOAD, params={"size": str(1 << 30)})
        await response.content.readexactly(65536)
        response.close()
        await poll_until(
            lambda: finished(gateway, "client_abort", "4xx", "GET") == 1,
            timeout_seconds=DEADLINE_SECONDS,
            what="the client abort counted",
        )


async def test_refused_uploads_are_counted_as_rejected(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url, max_upload_bytes=1000) as gateway:
        too_large = b"x" * 2000
        async with client.post(gateway.url + UPLOAD, data=too_large) as response:
            assert response.status == 413
        form = b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n'
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        async with client.post(gateway.url + UPLOAD, data=form, headers=headers) as response:
            assert response.status == 400
        assert finished(gateway, "rejected", "4xx", "POST") == 2


async def test_metrics_are_served_on_the_admin_port_with_bounded_labels(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params={"size": "1000"}) as response:
            await response.read()
        identity = {"Accept-Encoding": "identity"}  # this client does not decompress
        async with client.get(gateway.admin_url + "/metrics", headers=identity) as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            text = await response.text()
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 200
    assert 'engine_gateway_build_info{version="' in text
    assert "process_resident_memory_bytes" in text
    assert "engine_gateway_upstream_ready" in text
    assert "engine_gateway_requests_in_flight 0.0" in text
    # Ids, names and paths never become labels (the samples; the help texts are prose).
    samples = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for word in ("p1", "doc", "/engine-rest", "127.0.0.1"):
        assert word not in samples


async def test_metrics_off_serves_and_counts_nothing(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url, metrics="off") as gateway:
        async with client.get(gateway.url + DOWNLOAD, params={"size": "1000"}) as response:
            assert len(await response.read()) == 1000
        async with client.get(gateway.admin_url + "/metrics") as response:
            assert response.status == 404
        assert transferred(gateway, "download") == 0


async def test_a_download_cut_by_the_drain_timeout_is_counted_as_drain_abort(
    stub: Stub, client: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(stub.url, drain_timeout_seconds=0.5)
    async with client.get(gateway.url + DOWNLOAD, params={"size": 8 * MIB, "gate": ""}) as got:
        await got.content.readexactly(65536)
        await gateway_app.drain(gateway.servers)  # the stub still holds the rest
        with pytest.raises(aiohttp.ClientPayloadError):
            await got.read()
    assert finished(gateway, "drain_abort", "2xx", "GET") == 1
    assert finished(gateway, "client_abort", "4xx", "GET") == 0
