"""What a client sees when the engine (here: the stub upstream) fails."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from tests.faults import stub_upstream
from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, Stub
from tests.processes import LOOPBACK, free_port

DEADLINE_SECONDS = 10


async def test_unreachable_engine_gives_502_in_the_engine_error_shape(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    nothing_listens = f"http://{LOOPBACK}:{free_port()}"
    async with gateway_for(nothing_listens) as gateway:
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 502
            body = await response.json()
    assert body["type"] == "UpstreamUnavailableException"
    assert body["code"] is None
    assert body["message"].startswith("Engine unreachable")


async def test_no_headers_within_the_read_timeout_gives_504(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url, read_timeout_seconds=0.5) as gateway:
        async with client.get(gateway.url + "/engine-rest/stall") as response:
            assert response.status == 504
            body = await response.json()
    assert (body["type"], body["code"]) == ("UpstreamTimeoutException", None)


@pytest.mark.parametrize("length", ["declared", "chunked"])
async def test_engine_dying_mid_body_aborts_the_client_connection(
    length: str, stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    query = {"size": str(1 << 20), "die_after": str(4 * 65536), "length": length}
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + "/engine-rest/stream", params=query) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        # The gateway is still healthy afterwards.
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 200


async def test_engine_silent_mid_body_aborts_the_client_after_the_read_timeout(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    query = {"size": str(1 << 20), "stall_after": str(65536)}
    async with gateway_for(stub.url, read_timeout_seconds=0.5) as gateway:
        async with client.get(gateway.url + "/engine-rest/stream", params=query) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()


async def test_engine_back_after_an_outage_is_served_again(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    from aiohttp import web

    from tests.faults import stub_upstream

    port = free_port()
    async with gateway_for(f"http://{LOOPBACK}:{port}") as gateway:
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 502
        async with client.get(gateway.admin_url + "/readyz") as response:
            assert response.status == 503
        runner = web.AppRunner(stub_upstream.build(stub_upstream.StubState()))
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, port).start()
        try:
            async with client.get(gateway.url + "/engine-rest/engine") as response:
                assert response.status == 200
            async with client.get(gateway.admin_url + "/readyz") as response:
                assert response.status == 200
        finally:
            await runner.cleanup()


async def test_redirects_are_passed_to_the_client_not_followed(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(
            gateway.url + "/engine-rest/redirect", allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/engine-rest/engine"
    assert stub.state.requests == 1


async def test_compressed_bodies_pass_unchanged(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + "/engine-rest/compressed") as response:
            assert response.headers["Content-Encoding"] == "gzip"
            raw = await response.read()
    assert gzip.decompress(raw) == b'{"compressed": true}'


async def test_hop_by_hop_headers_stay_at_the_gateway_and_forwarded_headers_are_added(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(
            gateway.url + "/engine-rest/headers",
            headers={
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "secret",
                "Proxy-Authorization": "Basic cHJveHk6cHJveHk=",
                "Authorization": "Basic ZGVtbzpkZW1v",
                "X-End-To-End": "kept",
            },
        ) as response:
            seen = {name.lower(): value for name, value in (await response.json())["headers"]}
    assert "x-hop" not in seen
    assert "proxy-authorization" not in seen
    assert seen["authorization"] == "Basic ZGVtbzpkZW1v"
    assert seen["x-end-to-end"] == "kept"
    assert seen["x-forwarded-for"] == LOOPBACK
    assert seen["x-forwarded-proto"] == "http"
    assert seen["host"] == gateway.url.removeprefix("http://")


@pytest.mark.parametrize(
    "path", ["/engine-rest/%2e%2e/manager", "/operaton/app/../api/engine/engine/default/task"]
)
async def test_dot_segments_never_reach_the_engine(
    path: str, stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(URL(gateway.url + path, encoded=True)) as response:
            assert response.status == 400
            assert (await response.json())["code"] is None
    assert stub.state.requests == 0


@pytest.mark.parametrize("path", ["/manager/html", "/engine-restx", "/operaton/app/cockpit/"])
async def test_paths_outside_the_api_roots_go_to_the_engine_as_they_are(
    path: str, stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    """The gateway is the front door of the whole engine server (the webapps' pages, their
    own APIs): what the engine answers there passes, here the stub's 404."""
    async with gateway_for(stub.url) as gateway:
        async with client.get(URL(gateway.url + path, encoded=True)) as response:
            assert response.status == 404
            assert response.headers["X-Stub"] == "elsewhere"
    assert stub.state.paths == [path]


@pytest.mark.parametrize("path", ["/manager/html", "/engine-restx", "/operaton/app/cockpit/"])
async def test_with_other_paths_refused_only_the_api_roots_reach_the_engine(
    path: str, stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url, other_paths="refuse") as gateway:
        async with client.get(URL(gateway.url + path, encoded=True)) as response:
            assert response.status == 404
            error = await response.json()
            assert (error["type"], error["code"]) == ("NotFoundException", None)
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 200  # the API root still reaches it
    assert path not in stub.state.paths


async def test_download_reaches_the_client_before_the_engine_has_sent_it_all(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # The stub holds everything after its first chunk until the client has that chunk;
    # a buffering gateway would deadlock here and hit the deadline.
    query = {"size": str(1 << 20), "gate": "1"}
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + "/engine-rest/stream", params=query) as response:
            first = await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
            stub.state.release.set()
            rest = await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
    assert len(first) + len(rest) == 1 << 20
    assert stub.state.outcome == "complete"


async def _serve_stub(port: int) -> web.AppRunner:
    runner = web.AppRunner(stub_upstream.build(stub_upstream.StubState()), shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, port).start()
    return runner


async def _port_accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        return False
    writer.close()
    return True


@pytest.mark.parametrize("refuse", ["on", "off"])
async def test_refuse_while_engine_down_closes_the_port_until_the_engine_answers_again(
    refuse: str, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    engine_port = free_port()
    engine = await _serve_stub(engine_port)
    async with gateway_for(
        f"http://{LOOPBACK}:{engine_port}", refuse_while_engine_down=refuse
    ) as gateway:
        port = URL(gateway.url).port
        assert port is not None
        # A kept-alive connection that has had its answer, idle when the engine goes.
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.write(b"GET /engine-rest/engine HTTP/1.1\r\nHost: gateway\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        await engine.cleanup()

        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 502  # this request finds the engine gone
        if refuse == "off":
            assert await _port_accepts(port)
            async with client.get(gateway.url + "/engine-rest/engine") as response:
                assert response.status == 502
            writer.close()
            return

        async def refused() -> bool:
            return not await _port_accepts(port)

        await poll_until(refused, timeout_seconds=DEADLINE_SECONDS, what="the port closed")
        # The idle connection was closed too: no request can start on it.
        assert await asyncio.wait_for(reader.read(), DEADLINE_SECONDS) == b""
        async with client.get(gateway.admin_url + "/livez") as response:
            assert response.status == 200
        async with client.get(gateway.admin_url + "/readyz") as response:
            assert response.status == 503

        engine = await _serve_stub(engine_port)
        try:

            async def served() -> bool:
                try:
                    async with client.get(gateway.url + "/engine-rest/engine") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await poll_until(served, timeout_seconds=DEADLINE_SECONDS, what="the port open")
        finally:
            await engine.cleanup()
