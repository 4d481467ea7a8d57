"""A binary download relayed as the engine framed it (gateway/relay.py), against the SCRIPTED
STUB UPSTREAM (raw bytes on a socket, not an engine): the client gets the engine's chunked
bytes unchanged, and when the engine's stream breaks, stalls, lies or the client leaves, a
short body never looks complete and the next download works."""

from __future__ import annotations

import asyncio
import ctypes
import mmap

import aiohttp
import pytest

from gateway import relay
from gateway.state import METRICS, RELAY
from tests.faults.polling import poll_until
from tests.faults.scripted_upstream import Script, ScriptedUpstream, Then, answer, serving
from tests.faults.test_lying_upstream import INVALID_HEADS
from tests.inprocess import GatewayFactory, InProcessGateway
from tests.processes import LOOPBACK, free_port

DEADLINE_SECONDS = 10
PATH = "/engine-rest/process-instance/p1/variables/doc/data"
# Named exactly, so no metadata lookup takes one of the scripts.
NAMED = 'Content-Disposition: attachment; filename="doc.bin"'
CHUNKED = f"HTTP/1.1 200 OK\n{NAMED}\nTransfer-Encoding: chunked"
PIECE = b"r" * 8192
BODY = b"2000\r\n" + PIECE + b"\r\n"  # one of the engine's 8 KiB chunks
LAST = b"0\r\n\r\n"
GOOD = Script(answer(CHUNKED, BODY * 3 + LAST), Then.KEEP)
# More than the gateway reads of a chunked body before the head goes out (a body that ends
# within relay.HEAD_LIMIT_BYTES goes out whole, with its head): what follows it is relayed
# after the client got the head, so a failure there can only cut the client's connection.
RUNS_ON = BODY * 9


def finished(gateway: InProcessGateway, outcome: str, status_class: str = "2xx") -> float:
    registry = gateway.servers.public.app[METRICS].registry
    labels = {
        "method": "GET",
        "route": "variable_data",
        "status_class": status_class,
        "outcome": outcome,
    }
    return registry.get_sample_value("engine_gateway_requests_total", labels) or 0.0


async def counted(
    gateway: InProcessGateway, outcome: str, status_class: str = "2xx", times: int = 1
) -> None:
    await poll_until(
        lambda: finished(gateway, outcome, status_class) == times,
        timeout_seconds=DEADLINE_SECONDS,
        what=f"{outcome} counted",
    )


async def raw_get(gateway: InProcessGateway, path: str = PATH) -> tuple[bytes, bytes]:
    """The gateway's answer as bytes on the wire: its head, and everything after it."""
    port = int(gateway.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(DEADLINE_SECONDS):
            received = await reader.read(-1)
    finally:
        writer.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


async def next_download_works(
    client: aiohttp.ClientSession, gateway: InProcessGateway, upstream: ScriptedUpstream
) -> None:
    upstream.scripts.append(GOOD)
    async with client.get(gateway.url + PATH) as response:
        assert (response.status, await response.read()) == (200, PIECE * 3)


FRAMINGS = {
    "plain": BODY * 2 + LAST,
    "extensions": b"2000;name=value;flag\r\n" + PIECE + b"\r\n" + b"0;last=yes\r\n\r\n",
    "trailers": BODY + b"0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n",
    "odd_sizes": b"1\r\nr\r\n1FFF\r\n" + PIECE[:8191] + b"\r\n" + LAST,
}


@pytest.mark.parametrize("ahead", [b"", RUNS_ON], ids=["whole", "relayed"])
@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=list(FRAMINGS))
async def test_the_engines_chunked_bytes_reach_the_client_unchanged(
    framing: bytes, ahead: bytes, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    framing = ahead + framing
    async with serving(Script(answer(CHUNKED, framing))) as upstream:
        async with gateway_for(upstream.url) as gateway:
            head, rest = await raw_get(gateway)
            lines = head.decode("latin-1").lower().split("\r\n")
            assert lines[0] == "http/1.1 200 ok"
            assert "transfer-encoding: chunked" in lines
            assert not any(line.startswith("content-length") for line in lines)
            assert rest == framing  # sizes, extensions, last chunk and trailers as sent
            await counted(gateway, "complete")
            # Sent whole with the head, or relayed through a body's buffer.
            spare = gateway.servers.public.app[RELAY].spare
            assert bool(spare.get(relay.RELAY_BUFFER_BYTES)) == bool(ahead)


async def test_a_kept_alive_engine_connection_carries_the_next_download(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with serving(GOOD, GOOD, GOOD) as upstream, gateway_for(upstream.url) as gateway:
        for _ in range(3):
            async with client.get(gateway.url + PATH) as response:
                assert (response.status, await response.read()) == (200, PIECE * 3)
        assert len(set(upstream.connections)) == 1
        await counted(gateway, "complete", times=3)


async def test_a_kept_alive_connection_the_engine_closed_is_not_an_error(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # The engine closes each connection after its answer (an idle timeout, a restart): the
    # next download finds the pooled one closed and goes on a new one.
    closing = Script(GOOD.answer, Then.CLOSE)
    async with serving(closing, closing) as upstream, gateway_for(upstream.url) as gateway:
        for _ in range(2):
            async with client.get(gateway.url + PATH) as response:
                assert (response.status, await response.read()) == (200, PIECE * 3)
        assert len(set(upstream.connections)) == 2
        await counted(gateway, "complete", times=2)


@pytest.mark.parametrize("then", [Then.CLOSE, Then.RESET])
async def test_the_engine_dying_mid_chunk_cuts_the_client(
    then: Then, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    dying = Script(answer(CHUNKED, RUNS_ON + b"2000\r\n" + PIECE[:1000]), then)
    async with serving(dying) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        await counted(gateway, "upstream_abort")
        await next_download_works(client, gateway, upstream)


BROKEN = {
    "size_not_hex": BODY + b"zz\r\n" + PIECE,
    "size_then_space": BODY + b"10 \r\n" + PIECE[:16] + b"\r\n" + LAST,
    "no_crlf_after_data": b"10\r\n" + PIECE[:17] + b"\r\n" + LAST,
    "after_the_last_chunk": BODY + LAST + b"EVIL",
    "a_second_answer_after_it": BODY + LAST + answer("HTTP/1.1 200 OK\nContent-Length: 4", b"EVIL"),
}
# Each way a chunked answer can break, before its head has gone out or after.
FAILING = {
    "dies": (BODY + b"2000\r\n" + PIECE[:1000], Then.CLOSE, "upstream_abort"),
    "is_reset": (BODY + b"2000\r\n" + PIECE[:1000], Then.RESET, "upstream_abort"),
    "stalls": (BODY + b"2000\r\n" + PIECE[:100], Then.HOLD, "timeout"),
    **{name: (framing, Then.HOLD, "upstream_abort") for name, framing in BROKEN.items()},
}


@pytest.mark.parametrize("framing", BROKEN.values(), ids=list(BROKEN))
async def test_broken_framing_cuts_the_client_at_once_and_nothing_of_it_goes_on(
    framing: bytes, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # The read timeout is long: llhttp catches the framing as it arrives, no timer does.
    broken = Script(answer(CHUNKED, RUNS_ON + framing))
    async with serving(broken) as upstream:
        async with gateway_for(upstream.url, read_timeout_seconds=60) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            await counted(gateway, "upstream_abort")
            await asyncio.wait_for(upstream.closed_by_gateway.wait(), DEADLINE_SECONDS)
            await next_download_works(client, gateway, upstream)


async def test_an_engine_that_stalls_mid_chunk_is_cut_at_the_read_timeout(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    stalling = Script(answer(CHUNKED, RUNS_ON + b"2000\r\n" + PIECE[:100]))  # then HOLD
    async with serving(stalling) as upstream:
        async with gateway_for(upstream.url, read_timeout_seconds=0.5) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            await counted(gateway, "timeout")
            await asyncio.wait_for(upstream.closed_by_gateway.wait(), DEADLINE_SECONDS)
            await next_download_works(client, gateway, upstream)


async def test_the_client_leaving_mid_download_closes_the_engine_connection(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # The engine has sent part of the body and holds the rest: the client reads the first
    # chunk and leaves; the gateway must let go of the engine's connection, not pool it.
    holding = Script(answer(CHUNKED, RUNS_ON + BODY))
    async with serving(holding) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert response.status == 200
            assert await response.content.readexactly(100) == PIECE[:100]
            response.close()
        await asyncio.wait_for(upstream.closed_by_gateway.wait(), DEADLINE_SECONDS)
        await counted(gateway, "client_abort", status_class="4xx")
        await next_download_works(client, gateway, upstream)


@pytest.mark.parametrize(("framing", "then", "outcome"), FAILING.values(), ids=list(FAILING))
async def test_a_small_chunked_answer_that_breaks_gets_an_error_instead_of_a_short_body(
    framing: bytes,
    then: Then,
    outcome: str,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    # The whole answer would have gone out with its head: nothing has, so the client is
    # told in the engine's error shape, and the engine's connection is not kept.
    async with serving(Script(answer(CHUNKED, framing), then)) as upstream:
        async with gateway_for(upstream.url, read_timeout_seconds=0.5) as gateway:
            async with client.get(gateway.url + PATH) as response:
                expected = 504 if outcome == "timeout" else 502
                assert response.status == expected
                body = await response.json()
            assert body["code"] is None
            assert PIECE[:100].decode() not in body["message"]
            await counted(gateway, outcome, "5xx")
            if then is Then.HOLD:
                await asyncio.wait_for(upstream.closed_by_gateway.wait(), DEADLINE_SECONDS)
            await next_download_works(client, gateway, upstream)


@pytest.mark.parametrize("head", INVALID_HEADS.values(), ids=list(INVALID_HEADS))
async def test_an_invalid_head_gives_502_without_the_engines_bytes(
    head: str, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with serving(Script(answer(head, b"BODY"))) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 502
                body = await response.json()
            assert (body["type"], body["code"]) == ("UpstreamInvalidResponseException", None)
            assert body["message"].startswith("The engine's answer is not valid HTTP: ")
            for quoted in ("X-Note", "4abc", "2OO", "SSH", "BODY"):
                assert quoted not in body["message"]
            await counted(gateway, "upstream_abort", "5xx")
            await next_download_works(client, gateway, upstream)


async def test_a_transfer_coding_inside_the_chunks_is_not_passed_as_plain_chunks(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # "gzip, chunked": the client would take gzip bytes for the file.
    head = f"HTTP/1.1 200 OK\n{NAMED}\nTransfer-Encoding: gzip, chunked"
    async with serving(Script(answer(head, BODY + LAST))) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 502
                assert (await response.json())["type"] == "UpstreamInvalidResponseException"
            await next_download_works(client, gateway, upstream)


@pytest.mark.parametrize("then", [Then.CLOSE, Then.RESET])
async def test_a_declared_body_cut_short_never_looks_complete(
    then: Then, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    short = Script(answer(f"HTTP/1.1 200 OK\n{NAMED}\nContent-Length: 100000", b"s" * 70_000), then)
    async with serving(short) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        await counted(gateway, "upstream_abort")
        await next_download_works(client, gateway, upstream)


@pytest.mark.parametrize("size", [4, 200_000, 2 << 20], ids=["whole", "relayed", "spliced"])
async def test_bytes_past_a_declared_length_never_reach_a_later_download(
    size: int, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    lying = answer(f"HTTP/1.1 200 OK\n{NAMED}\nContent-Length: {size}", b"d" * size) + b"EVIL" * 100
    async with serving(Script(lying, Then.KEEP)) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert (response.status, await response.read()) == (200, b"d" * size)
        await next_download_works(client, gateway, upstream)
        assert len(set(upstream.connections)) == 2  # the lying connection was not reused


async def test_a_body_that_runs_to_the_engines_close_is_framed_for_the_client(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    eof_delimited = Script(
        answer(f"HTTP/1.1 200 OK\n{NAMED}\nConnection: close", PIECE * 5), Then.CLOSE
    )
    async with serving(eof_delimited) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert (response.status, await response.read()) == (200, PIECE * 5)
            assert response.headers["Transfer-Encoding"] == "chunked"
        await counted(gateway, "complete")


async def test_head_is_answered_from_the_head_and_the_connection_kept(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    head_only = Script(answer(CHUNKED), Then.KEEP)
    async with serving(head_only) as upstream, gateway_for(upstream.url) as gateway:
        async with client.head(gateway.url + PATH) as response:
            assert response.status == 200
            assert await response.read() == b""
        await next_download_works(client, gateway, upstream)
        assert len(set(upstream.connections)) == 1


async def test_an_unreachable_engine_gives_502_for_a_download(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    nothing_listens = f"http://{LOOPBACK}:{free_port()}"
    async with gateway_for(nothing_listens) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert response.status == 502
            body = await response.json()
    assert (body["type"], body["code"]) == ("UpstreamUnavailableException", None)
    assert body["message"].startswith("Engine unreachable: cannot connect to ")


async def test_no_head_within_the_read_timeout_gives_504(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with serving(Script(b"")) as upstream:  # reads the request, answers nothing
        async with gateway_for(upstream.url, read_timeout_seconds=0.5) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 504
                assert (await response.json())["type"] == "UpstreamTimeoutException"
            await counted(gateway, "timeout", "5xx")


async def test_a_small_answer_holds_a_head_buffer_only_and_a_download_a_body_buffer(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # Memory per request: 64 KiB for a small call, 1 MiB only while a body is relayed.
    small = Script(answer("HTTP/1.1 200 OK\nContent-Length: 2", b"[]"), Then.KEEP)
    large = Script(answer(CHUNKED, BODY * 20 + LAST))  # more than comes with the head
    async with serving(small, large) as upstream, gateway_for(upstream.url) as gateway:
        pool = gateway.servers.public.app[RELAY]
        async with client.get(gateway.url + "/engine-rest/task") as response:
            assert (response.status, await response.read()) == (200, b"[]")
        assert set(pool.spare) == {relay.HEAD_LIMIT_BYTES}
        async with client.get(gateway.url + PATH) as response:
            assert (response.status, await response.read()) == (200, PIECE * 20)
        await poll_until(
            lambda: bool(pool.spare.get(relay.RELAY_BUFFER_BYTES)),
            timeout_seconds=DEADLINE_SECONDS,
            what="the body buffer given back for the next download",
        )
    # The body's buffer starts a page: the kernel copies into it several times faster.
    (body_buffer,) = pool.spare[relay.RELAY_BUFFER_BYTES]
    start = ctypes.addressof(ctypes.c_char.from_buffer(body_buffer))
    assert start % mmap.PAGESIZE == 0


async def test_the_relay_holds_to_upstream_connections_and_gives_each_slot_back(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # One connection at once: a broken answer and whole ones each give their slot back, so
    # requests that wait for it are answered in turn, on the one kept-alive connection.
    dying = Script(answer(CHUNKED, RUNS_ON + b"2000\r\n" + PIECE[:1000]), Then.CLOSE)
    async with serving(dying, GOOD, GOOD, GOOD) as upstream:
        async with gateway_for(upstream.url, upstream_connections=1) as gateway:
            pool = gateway.servers.public.app[RELAY]
            async with client.get(gateway.url + PATH) as response:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()

            async def download() -> bytes:
                async with client.get(gateway.url + PATH) as response:
                    return await response.read()

            assert await asyncio.gather(*(download() for _ in range(3))) == [PIECE * 3] * 3
            assert len(set(upstream.connections[1:])) == 1  # never two at once
            await poll_until(
                lambda: pool.in_use == 0,
                timeout_seconds=DEADLINE_SECONDS,
                what="every slot given back",
            )
