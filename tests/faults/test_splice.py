"""The kernel relay (gateway/splice.py) against the STUB UPSTREAM (not an engine): large
bodies of declared length go socket to socket, byte-identical and counted; every way they
can break ends as it does on the chunk path; everything else stays on the chunk path."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest

from gateway import splice
from tests.faults.polling import poll_until
from tests.faults.stub_upstream import CHUNK
from tests.faults.test_metrics import finished, transferred
from tests.inprocess import GatewayFactory, Stub

DEADLINE_SECONDS = 10
MIB = 1 << 20
DOWNLOAD = "/engine-rest/process-instance/p1/variables/doc/data"


@pytest.fixture
def splices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the os.splice calls that moved bytes into the client's socket or the pipe."""
    moved: list[int] = []
    real = splice._splice

    def counted(source: int, target: int, size: int) -> int | None:
        result = real(source, target, size)
        if result:
            moved.append(result)
        return result

    monkeypatch.setattr(splice, "_splice", counted)
    return moved


def _expected(size: int) -> str:
    whole, rest = divmod(size, len(CHUNK))
    return hashlib.sha256(CHUNK * whole + CHUNK[:rest]).hexdigest()


@pytest.mark.parametrize("size", [MIB, 8 * MIB + 12345])
async def test_a_large_body_is_spliced_byte_identical_and_counted(
    size: int,
    splices: list[int],
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params={"size": str(size)}) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(size)
            body = await response.read()
        assert hashlib.sha256(body).hexdigest() == _expected(size)
        assert splices
        assert transferred(gateway, "download") == size
        assert finished(gateway, "complete", "2xx", "GET") == 1
        # The next request on a fresh engine connection works.
        async with client.get(gateway.url + "/engine-rest/engine") as response:
            assert response.status == 200


@pytest.mark.parametrize(
    "query",
    [
        {"size": str(MIB - 1)},  # small: the chunk loop is cheaper than a new connection
        {"size": str(4 * MIB), "length": "chunked"},  # framing the gateway must re-encode
    ],
    ids=["small", "chunked"],
)
async def test_other_bodies_take_the_chunk_path(
    query: dict[str, str],
    splices: list[int],
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params=query) as response:
            body = await response.read()
    assert hashlib.sha256(body).hexdigest() == _expected(int(query["size"]))
    assert splices == []


async def test_splice_off_takes_the_chunk_path(
    splices: list[int], stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    async with gateway_for(stub.url, splice="off") as gateway:
        async with client.get(gateway.url + DOWNLOAD, params={"size": str(4 * MIB)}) as got:
            assert len(await got.read()) == 4 * MIB
    assert splices == []


async def test_an_engine_dying_mid_splice_aborts_the_client_and_is_counted(
    splices: list[int], stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    query = {"size": str(8 * MIB), "die_after": str(2 * MIB)}
    async with gateway_for(stub.url) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params=query) as response:
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
        assert splices

        async def counted() -> bool:
            return finished(gateway, "upstream_abort", "2xx", "GET") == 1

        await poll_until(counted, timeout_seconds=DEADLINE_SECONDS, what="upstream_abort")
        assert transferred(gateway, "download") <= 2 * MIB


async def test_an_engine_silent_mid_splice_is_cut_at_the_read_timeout(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    query = {"size": str(8 * MIB), "stall_after": str(2 * MIB)}
    async with gateway_for(stub.url, read_timeout_seconds=0.5) as gateway:
        async with client.get(gateway.url + DOWNLOAD, params=query) as response:
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(response.read(), DEADLINE_SECONDS)

        async def counted() -> bool:
            return finished(gateway, "timeout", "2xx", "GET") == 1

        await poll_until(counted, timeout_seconds=DEADLINE_SECONDS, what="timeout outcome")


async def test_a_client_leaving_mid_splice_releases_the_engine_connection(
    splices: list[int], stub: Stub, gateway_for: GatewayFactory
) -> None:
    # The stub holds the body after its first 64 KiB until released; the client reads that
    # much and leaves.
    query = {"size": str(64 * MIB), "gate": "1"}
    async with gateway_for(stub.url) as gateway:
        async with aiohttp.ClientSession() as leaving:
            async with leaving.get(gateway.url + DOWNLOAD, params=query) as response:
                await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
        stub.state.release.set()

        async def released() -> bool:
            return stub.state.ended.is_set()

        await poll_until(released, timeout_seconds=DEADLINE_SECONDS, what="engine side closed")
        assert stub.state.outcome == "cancelled"

        async def counted() -> bool:
            return finished(gateway, "client_abort", "4xx", "GET") == 1

        await poll_until(counted, timeout_seconds=DEADLINE_SECONDS, what="client_abort")
