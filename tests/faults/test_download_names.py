"""Naming a download from metadata (the stub upstream's variable query, not an engine): the
lookup runs with the caller's credentials and nothing else, and a lookup that is denied or
never answers leaves the download intact, named as well as the gateway can."""

from __future__ import annotations

import aiohttp
import pytest

from gateway import metadata
from tests.faults import stub_upstream
from tests.inprocess import GatewayFactory, Stub

DOWNLOAD = "/engine-rest/process-instance/p1/variables/{name}/data?size=1000"
FROM_METADATA = (
    "attachment; filename=\"Metadonnees _.pdf\"; filename*=UTF-8''"
    "M%C3%A9tadonn%C3%A9es%20%E2%9C%93.pdf"
)


async def _download(
    client: aiohttp.ClientSession, url: str, authorization: str | None
) -> aiohttp.ClientResponse:
    headers = {"Authorization": authorization} if authorization else {}
    async with client.get(url, headers=headers) as response:
        assert response.status == 200
        assert len(await response.read()) == 1000
        return response


async def test_the_lookup_carries_the_callers_credentials_only(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    caller = stub_upstream.LOOKUP_AUTHORIZATION
    async with gateway_for(stub.url) as gateway:
        url = gateway.url + DOWNLOAD.format(name="doc") + "&disposition=attachment"
        response = await _download(client, url, caller)
    assert response.headers["Content-Disposition"] == FROM_METADATA
    [lookup] = stub.state.lookup_headers
    assert lookup["Authorization"] == caller
    # No forwarding headers, no cookies of anyone's: the gateway's own small request.
    assert set(lookup) <= {"Host", "Authorization", "Accept", "Accept-Encoding", "User-Agent"}
    # The engine saw its own query only: ours (disposition) was taken off the download.
    download, query = stub.state.paths
    assert download == "/engine-rest/process-instance/p1/variables/doc/data?size=1000"
    assert query.startswith("/engine-rest/variable-instance?variableName=doc&executionIdIn=p1&")
    assert "deserializeValues=false" in query


@pytest.mark.parametrize("authorization", [None, "Basic d3Jvbmc6d3Jvbmc="])
async def test_a_denied_lookup_falls_back_to_the_variable_name(
    authorization: str | None,
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    async with gateway_for(stub.url) as gateway:
        response = await _download(client, gateway.url + DOWNLOAD.format(name="doc"), authorization)
    assert response.headers["Content-Disposition"] == 'attachment; filename="doc"'
    [lookup] = stub.state.lookup_headers
    assert lookup.get("Authorization") == authorization  # never someone else's


async def test_a_lookup_that_never_answers_gives_up_and_the_download_goes_on(
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metadata, "LOOKUP_TIMEOUT_SECONDS", 0.3)
    async with gateway_for(stub.url) as gateway:
        url = gateway.url + DOWNLOAD.format(name="slow")
        response = await _download(client, url, stub_upstream.LOOKUP_AUTHORIZATION)
    assert response.headers["Content-Disposition"] == 'attachment; filename="slow"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
