"""The digest options against the STUB UPSTREAM (not an engine): what reaches the engine, and
what `--digests off` turns off."""

from __future__ import annotations

import base64
import hashlib

import aiohttp

from tests.inprocess import GatewayFactory, Stub

UPLOAD = "/engine-rest/task/t/variables/doc/data"
CONTENT = b"the file" * 1000
WRONG = "sha-256=:" + base64.b64encode(bytes(32)).decode() + ":"
RIGHT = "sha-256=:" + base64.b64encode(hashlib.sha256(CONTENT).digest()).decode() + ":"


async def _put(url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as client:
        response = await client.put(url + UPLOAD + "?filename=f.bin", data=CONTENT, headers=headers)
        await response.read()
        return response


async def test_a_raw_uploads_digest_fields_are_checked_and_not_passed_on_to_its_form(
    stub: Stub, gateway_for: GatewayFactory
) -> None:
    # The engine gets the body inside a form, which the client's digests do not describe.
    async with gateway_for(stub.url) as gateway:
        response = await _put(gateway.url, {"Content-Digest": RIGHT, "Repr-Digest": RIGHT})
    assert response.status == 204
    assert response.headers["Repr-Digest"] == RIGHT
    sent = {name.lower() for name, _ in stub.state.request_headers}
    assert not sent & {"content-digest", "repr-digest"}


async def test_with_digests_off_nothing_is_checked_or_added(
    stub: Stub, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(stub.url, digests="off") as gateway:
        response = await _put(gateway.url, {"Repr-Digest": WRONG})
    assert response.status == 204
    assert "Repr-Digest" not in response.headers
    assert stub.state.outcome == "complete"


async def test_a_malformed_want_repr_digest_on_an_upload_is_refused_like_any_digest_field(
    stub: Stub, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(stub.url) as gateway:
        response = await _put(gateway.url, {"Want-Repr-Digest": "sha-256=high"})
    assert response.status == 400
    assert stub.state.requests == 0
