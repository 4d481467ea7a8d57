"""A clamd that fails in ways the real one rarely does on demand: a STUB CLAMD (not ClamAV)
that stops reading, never answers, or answers nonsense, in front of the STUB UPSTREAM. The
gateway waits --clamd-timeout-seconds, then applies --clamd-failure; failing closed, the
upload never reaches the stub whole. Each case is tried with a multipart upload and with a
file in a JSON body (an external task's completion)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, Stub
from tests.processes import LOOPBACK, free_port

TIMEOUT_SECONDS = 1.0
UPLOAD = "/engine-rest/task/t/variables/doc/data"
FORM_TYPE = "multipart/form-data; boundary=b"
JSON_DOOR = "/engine-rest/external-task/x/complete"


def _form(content: bytes) -> bytes:
    return (
        b'--b\r\nContent-Disposition: form-data; name="data"; filename="f.pdf"\r\n\r\n'
        + content
        + b"\r\n--b--\r\n"
    )


def _json(content: bytes) -> bytes:
    value = {
        "type": "File",
        "value": base64.b64encode(content).decode(),
        "valueInfo": {"filename": "f.pdf"},
    }
    return json.dumps({"workerId": "w", "variables": {"doc": value}}).encode()


BODIES = {"multipart": (UPLOAD, FORM_TYPE, _form), "json": (JSON_DOOR, "application/json", _json)}


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def _never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(1 << 20):
        pass


async def _read_stream(reader: asyncio.StreamReader) -> None:
    """The INSTREAM command and its chunks, up to the zero length."""
    await reader.readuntil(b"\0")
    while length := int.from_bytes(await reader.readexactly(4)):
        await reader.readexactly(length)


async def _answers_nonsense(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_stream(reader)
    writer.write(b"what is INSTREAM?\0")
    await writer.drain()
    writer.close()


@pytest.fixture
async def stub_clamd(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The STUB CLAMD, behaving as the test's parameter says; yields its tcp:// URL."""
    behaviour: Behaviour = request.param
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await behaviour(reader, writer)

    port = free_port()
    server = await asyncio.start_server(serve, LOOPBACK, port)
    yield f"tcp://{LOOPBACK}:{port}"
    for writer in connections:
        writer.transport.abort()
    server.close()


async def _post(url: str, door: str, content: bytes) -> tuple[int, dict[str, object], int]:
    """`content` as a file through `door`; the status, the answer and the body's length."""
    path, content_type, body = BODIES[door]
    data = body(content)
    async with (
        aiohttp.ClientSession() as client,
        client.post(url + path, data=data, headers={"Content-Type": content_type}) as response,
    ):
        return response.status, await response.json(content_type=None), len(data)


@pytest.mark.parametrize(
    ("stub_clamd", "reason"),
    [
        (_never_reads, "stopped reading"),
        (_never_answers, "did not answer in time"),
        (_answers_nonsense, "what is INSTREAM?"),
    ],
    indirect=["stub_clamd"],
)
@pytest.mark.parametrize("door", BODIES)
async def test_failing_closed_a_clamd_that_cannot_judge_gets_503_and_the_engine_no_whole_body(
    stub_clamd: str, reason: str, door: str, stub: Stub, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(
        stub.url, clamd=stub_clamd, clamd_timeout_seconds=TIMEOUT_SECONDS
    ) as gateway:
        # Larger than the socket buffers, so a clamd that does not read holds the stream up.
        status, error, _ = await _post(gateway.url, door, bytes(12 << 20))
        assert status == 503
        assert error["type"] == "ScanUnavailableException"
        assert reason in str(error["message"])
        await poll_until(stub.state.ended.is_set, timeout_seconds=10, what="the engine request")
        assert stub.state.outcome == "cancelled"


@pytest.mark.parametrize("stub_clamd", [_never_answers], indirect=True)
@pytest.mark.parametrize("door", BODIES)
async def test_failing_open_a_clamd_that_does_not_answer_lets_the_upload_through(
    stub_clamd: str, door: str, stub: Stub, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(
        stub.url, clamd=stub_clamd, clamd_timeout_seconds=TIMEOUT_SECONDS, clamd_failure="open"
    ) as gateway:
        status, _, length = await _post(gateway.url, door, b"unscanned")
        assert status == 204
        assert stub.state.outcome == "complete"
        assert stub.state.received_bytes == length
