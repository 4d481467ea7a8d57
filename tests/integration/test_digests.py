"""RFC 9530 integrity digests on uploads, against the real engine: a claimed digest is checked
while the body streams, a mismatch stores nothing, and a stored variable's answer carries the
digest of what the engine now serves."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests import processes
from tests.integration import engine_api

CONTENT = b"%PDF-1.7 the invoice, as the supplier sent it\n" * 200


def _field(**digests: bytes) -> str:
    return ", ".join(
        f"{name.replace('_', '-')}=:{base64.b64encode(value).decode()}:"
        for name, value in digests.items()
    )


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _flip_one_bit(digest: bytes) -> bytes:
    return bytes([digest[0] ^ 0x01]) + digest[1:]


def _form(content: bytes) -> tuple[bytes, str]:
    form = engine_api.variable_form(
        content, len(content), value_type="File", filename="invoice.pdf", mimetype="application/pdf"
    )
    return form.small_body(), form.content_type


async def _upload(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    body: bytes,
    headers: dict[str, str],
    *,
    method: str = "POST",
    query: str = "",
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data{query}"
    async with client.request(method, url, data=body, headers=headers) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw else None, response.headers


async def test_every_stored_upload_answers_with_the_repr_digest_of_what_is_stored(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    status, _, headers = await _upload(
        client, gateway_process.base_url, task_id, body, {"Content-Type": content_type}
    )
    assert status == 204
    assert headers["Repr-Digest"] == _field(sha_256=_sha256(CONTENT))
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == CONTENT


async def test_a_correct_repr_digest_is_accepted_and_echoed_with_sha_512_when_claimed(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    claimed = _field(sha_256=_sha256(CONTENT), sha_512=hashlib.sha512(CONTENT).digest())
    status, _, headers = await _upload(
        client,
        gateway_process.base_url,
        task_id,
        body,
        {"Content-Type": content_type, "Repr-Digest": claimed},
    )
    assert status == 204
    assert headers["Repr-Digest"] == claimed
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == CONTENT


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512"])
async def test_a_repr_digest_one_bit_off_is_refused_and_nothing_is_stored(
    algorithm: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    computed = hashlib.new(algorithm.replace("-", ""), CONTENT).digest()
    claimed = _field(**{algorithm.replace("-", "_"): _flip_one_bit(computed)})
    status, error, headers = await _upload(
        client,
        gateway_process.base_url,
        task_id,
        body,
        {"Content-Type": content_type, "Repr-Digest": claimed},
    )
    assert status == 400
    assert error["type"] == "DigestMismatchException"
    assert error["code"] is None
    assert f"Repr-Digest {algorithm}" in error["message"]
    assert base64.b64encode(computed).decode() in error["message"]
    assert "Repr-Digest" not in headers
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS


async def test_content_digest_covers_the_form_exactly_as_sent(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    right = {"Content-Type": content_type, "Content-Digest": _field(sha_256=_sha256(body))}
    # The file's digest, not the form's.
    wrong = {**right, "Content-Digest": _field(sha_256=_sha256(CONTENT))}

    status, error, _ = await _upload(client, gateway_process.base_url, task_id, body, wrong)
    assert status == 400
    assert error["type"] == "DigestMismatchException"
    assert "Content-Digest sha-256" in error["message"]
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS

    status, _, headers = await _upload(client, gateway_process.base_url, task_id, body, right)
    assert status == 204
    assert headers["Repr-Digest"] == _field(sha_256=_sha256(CONTENT))
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == CONTENT


async def test_repr_digest_of_the_whole_form_as_rfc_9530_reads_it_is_accepted_too(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    status, _, headers = await _upload(
        client,
        gateway_process.base_url,
        task_id,
        body,
        {"Content-Type": content_type, "Repr-Digest": _field(sha_256=_sha256(body))},
    )
    assert status == 204
    assert headers["Repr-Digest"] == _field(sha_256=_sha256(CONTENT))
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == CONTENT


@pytest.mark.parametrize("field_name", ["Repr-Digest", "Content-Digest"])
async def test_a_raw_upload_is_checked_against_its_body(
    field_name: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    wrong = {field_name: _field(sha_256=_flip_one_bit(_sha256(CONTENT)))}
    right = {field_name: _field(sha_256=_sha256(CONTENT))}
    query = "?filename=invoice.pdf"
    for headers, expected in ((wrong, 400), (right, 204)):
        status, _, answer = await _upload(
            client,
            gateway_process.base_url,
            task_id,
            CONTENT,
            {"Content-Type": "application/pdf", **headers},
            method="PUT",
            query=query,
        )
        assert status == expected
        stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
        assert stored == (engine_api.PREVIOUS if expected == 400 else CONTENT)
    assert answer["Repr-Digest"] == _field(sha_256=_sha256(CONTENT))


async def test_a_malformed_digest_field_is_refused_before_anything_is_sent(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    for value in ("sha-256=not-base64", "sha-256=:AAAA:"):
        status, error, _ = await _upload(
            client,
            gateway_process.base_url,
            task_id,
            body,
            {"Content-Type": content_type, "Repr-Digest": value},
        )
        assert status == 400
        assert error["type"] == "InvalidRequestException"
        assert "Repr-Digest" in error["message"]
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS


async def test_digests_of_algorithms_no_longer_trusted_are_ignored_as_rfc_9530_allows(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body, content_type = _form(CONTENT)
    md5_wrong = _field(md5=bytes(16))
    status, _, headers = await _upload(
        client,
        gateway_process.base_url,
        task_id,
        body,
        {"Content-Type": content_type, "Repr-Digest": md5_wrong, "Want-Repr-Digest": "sha-512=5"},
    )
    assert status == 204
    assert headers["Repr-Digest"] == _field(
        sha_256=_sha256(CONTENT), sha_512=hashlib.sha512(CONTENT).digest()
    )
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == CONTENT


async def test_the_log_line_carries_the_stored_contents_digest(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    previous: tuple[str, str],
) -> None:
    _, task_id = previous
    body, content_type = _form(CONTENT)
    status, _, _ = await _upload(
        client, gateway_process.base_url, task_id, body, {"Content-Type": content_type}
    )
    assert status == 204
    expected = f"digest={_field(sha_256=_sha256(CONTENT))} scan=-"
    line = f"path=/engine-rest/task/{task_id}/variables/doc/data"
    processes.wait_until(
        lambda: any(
            expected in entry and line in entry
            for entry in gateway_process.running.log_path.read_text().splitlines()
        ),
        timeout_seconds=10,
        what="the upload's log line",
    )


@pytest.mark.parametrize("wanted", ["sha-256=5", "sha-512=9, sha-256=1"])
async def test_want_repr_digest_on_a_download_read_whole_is_answered(
    wanted: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, _ = previous
    url = (
        f"{gateway_process.base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    )
    async with client.get(url, headers={"Want-Repr-Digest": wanted}) as response:
        assert response.status == 200
        assert await response.read() == engine_api.PREVIOUS
        expected = {"sha_256": _sha256(engine_api.PREVIOUS)}
        if "sha-512" in wanted:
            expected["sha_512"] = hashlib.sha512(engine_api.PREVIOUS).digest()
        assert response.headers["Repr-Digest"] == _field(**expected)
    async with client.get(url) as response:
        assert "Repr-Digest" not in response.headers  # asked for only


async def test_a_download_too_large_to_read_whole_streams_without_repr_digest(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    content = CONTENT * 20  # 1.8 MB: beyond the 64 KiB the gateway reads ahead
    body, content_type = _form(content)
    status, _, _ = await _upload(
        client, engine_process.base_url, task_id, body, {"Content-Type": content_type}
    )
    assert status == 204
    url = (
        f"{gateway_process.base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    )
    async with client.get(url, headers={"Want-Repr-Digest": "sha-256=5"}) as response:
        assert response.status == 200
        assert "Repr-Digest" not in response.headers
        assert await response.read() == content
