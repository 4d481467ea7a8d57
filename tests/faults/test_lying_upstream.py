"""What a client sees when the engine (here: the SCRIPTED STUB UPSTREAM, raw bytes on a
socket) lies about its body's length, sends header bytes HTTP forbids, or resets: never a
short body that looks whole, never the engine's bad bytes, and the next request works."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.state import METRICS
from tests.faults.polling import poll_until
from tests.faults.scripted_upstream import Script, Then, answer, serving
from tests.inprocess import GatewayFactory, InProcessGateway

DEADLINE_SECONDS = 10
PATH = "/engine-rest/some/resource"
GOOD = Script(answer("HTTP/1.1 200 OK\nContent-Length: 4", b"GOOD"))
OCTETS = "HTTP/1.1 200 OK\nContent-Type: application/octet-stream"


def finished(
    gateway: InProcessGateway, outcome: str, status_class: str, method: str = "GET"
) -> float:
    registry = gateway.servers.public.app[METRICS].registry
    labels = {
        "method": method,
        "route": "passthrough",
        "status_class": status_class,
        "outcome": outcome,
    }
    return registry.get_sample_value("engine_gateway_requests_total", labels) or 0.0


async def counted(
    gateway: InProcessGateway, outcome: str, status_class: str, times: int = 1, method: str = "GET"
) -> None:
    await poll_until(
        lambda: finished(gateway, outcome, status_class, method) == times,
        timeout_seconds=DEADLINE_SECONDS,
        what=f"{outcome} counted",
    )


async def next_request_works(client: aiohttp.ClientSession, gateway: InProcessGateway) -> None:
    async with client.get(gateway.url + PATH) as response:
        assert (response.status, await response.read()) == (200, b"GOOD")


async def test_surplus_bytes_after_the_declared_length_never_reach_a_later_request(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # Behind its 4 declared bytes, the engine sends what looks like a second answer. A
    # gateway that reused this connection would hand "EVIL" to the next request.
    lying = answer("HTTP/1.1 200 OK\nContent-Length: 4", b"BODY") + GOOD.answer.replace(
        b"GOOD", b"EVIL"
    )
    async with serving(Script(lying), GOOD) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            assert (response.status, await response.read()) == (200, b"BODY")
        await next_request_works(client, gateway)
        await asyncio.wait_for(upstream.closed_by_gateway.wait(), DEADLINE_SECONDS)
        await counted(gateway, "complete", "2xx", times=2)


@pytest.mark.parametrize("then", [Then.CLOSE, Then.RESET])
@pytest.mark.parametrize(
    ("declared", "sent"),
    [(1 << 20, 200_000), (1000, 10)],
    ids=["streamed", "small"],
)
async def test_a_body_shorter_than_its_content_length_never_looks_complete(
    then: Then,
    declared: int,
    sent: int,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    short = Script(answer(f"{OCTETS}\nContent-Length: {declared}", b"s" * sent), then)
    async with serving(short, GOOD) as upstream, gateway_for(upstream.url) as gateway:
        async with client.get(gateway.url + PATH) as response:
            if declared > 65536:
                # Streamed: the headers went out, so the client's connection is cut.
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            else:
                # Read whole before anything goes out: the client gets an error instead.
                assert response.status == 502
                body = await response.json()
                assert (body["type"], body["code"]) == ("UpstreamUnavailableException", None)
        await counted(gateway, "upstream_abort", "2xx" if declared > 65536 else "5xx")
        await next_request_works(client, gateway)


INVALID_HEADS = {
    "nul_in_value": "HTTP/1.1 200 OK\nX-Note: a\x00b\nContent-Length: 4",
    "bare_cr_in_value": "HTTP/1.1 200 OK\nX-Note: a\rb\nContent-Length: 4",
    "line_without_colon": "HTTP/1.1 200 OK\nX-Note ab\nContent-Length: 4",
    "space_before_colon": "HTTP/1.1 200 OK\nX-Note : ab\nContent-Length: 4",
    "content_length_not_a_number": "HTTP/1.1 200 OK\nContent-Length: 4abc",
    "two_content_lengths": "HTTP/1.1 200 OK\nContent-Length: 4\nContent-Length: 5",
    "content_length_and_chunked": "HTTP/1.1 200 OK\nContent-Length: 4\nTransfer-Encoding: chunked",
    "status_not_a_number": "HTTP/1.1 2OO OK\nContent-Length: 4",
    "not_http": "SSH-2.0-OpenSSH_9.2\nContent-Length: 4",
}


@pytest.mark.parametrize("head", INVALID_HEADS.values(), ids=list(INVALID_HEADS))
async def test_invalid_header_bytes_give_502_without_the_engines_bytes(
    head: str, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with serving(Script(answer(head, b"BODY")), GOOD) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 502
                body = await response.json()
            assert (body["type"], body["code"]) == ("UpstreamInvalidResponseException", None)
            assert body["message"].startswith("The engine's answer is not valid HTTP: ")
            for quoted in ("X-Note", "4abc", "2OO", "SSH"):
                assert quoted not in body["message"]
            await counted(gateway, "upstream_abort", "5xx")
            await next_request_works(client, gateway)


async def test_control_characters_the_parser_lets_through_go_out_as_spaces(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # aiohttp's lenient response parser (the answers to requests with a body) accepts DEL;
    # its writer would refuse to send it and fail the whole response.
    head = "HTTP/1.1 200 Fine\x7fReason\nX-Note: a\x7fb\nContent-Length: 4"
    async with serving(Script(answer(head, b"BODY")), GOOD) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.post(gateway.url + PATH, data=b"{}") as response:
                assert (response.status, await response.read()) == (200, b"BODY")
                assert response.headers["X-Note"] == "a b"
                assert response.reason == "Fine Reason"
            await counted(gateway, "complete", "2xx", method="POST")


async def test_llhttp_refuses_control_characters_in_an_answer_to_a_get(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # A bodyless GET goes on the gateway's own connection, whose parser (llhttp) holds to
    # RFC 9110: DEL is no field-value character.
    head = "HTTP/1.1 200 OK\nX-Note: a\x7fb\nContent-Length: 4"
    async with serving(Script(answer(head, b"BODY")), GOOD) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 502
                body = await response.json()
            assert body["message"] == (
                "The engine's answer is not valid HTTP: Invalid header value char"
            )
            await next_request_works(client, gateway)


async def test_a_reset_instead_of_an_answer_gives_502_and_the_next_request_works(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # A GET whose kept-alive connection is reset before any answer is retried once on a
    # new connection (aiohttp, as nginx's proxy_next_upstream does for idempotent
    # requests): every request is reset until GOOD is appended.
    async with serving(Script(b"", Then.RESET)) as upstream:
        async with gateway_for(upstream.url) as gateway:
            async with client.get(gateway.url + PATH) as response:
                assert response.status == 502
                body = await response.json()
            assert (body["type"], body["code"]) == ("UpstreamUnavailableException", None)
            await counted(gateway, "upstream_abort", "5xx")
            upstream.scripts.append(GOOD)
            await next_request_works(client, gateway)


async def test_broken_chunk_framing_mid_body_cuts_the_client_within_the_read_timeout(
    gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # aiohttp's C parser (the answers to requests with a body) loses this error, and its
    # sock_read timer with it; the gateway's own deadline on each read cuts the client here.
    # A GET's answer is checked by llhttp instead, at once (tests/faults/test_relay.py).
    chunk = b"10000\r\n" + b"c" * 65536 + b"\r\n"
    broken = answer(f"{OCTETS}\nTransfer-Encoding: chunked", chunk * 4 + b"zz\r\nnot a chunk\r\n")
    async with serving(Script(broken), GOOD) as upstream:
        async with gateway_for(upstream.url, read_timeout_seconds=0.5) as gateway:
            async with client.post(gateway.url + PATH, data=b"{}") as response:
                assert response.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            await counted(gateway, "timeout", "2xx", method="POST")
            await next_request_works(client, gateway)
