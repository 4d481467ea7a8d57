"""Uploads through the gateway: malformed forms, limits and raw bodies, against the real
engine. After every rejected or aborted upload the variable is unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api

B = "----gatewayEdge4d2c"


def _form(*parts: tuple[str, bytes], close: bool = True, eol: bytes = b"\r\n") -> bytes:
    body = b""
    for headers, content in parts:
        body += b"--" + B.encode() + eol + headers.encode().replace(b"\r\n", eol)
        body += eol + eol + content + eol
    return body + (b"--" + B.encode() + b"--" + eol if close else b"")


DATA = (
    'Content-Disposition: form-data; name="data"; filename="doc.bin"\r\n'
    "Content-Type: application/octet-stream"
)
DATA_NO_NAME = (
    'Content-Disposition: form-data; name="data"\r\nContent-Type: application/octet-stream'
)
VT = 'Content-Disposition: form-data; name="valueType"\r\nContent-Type: text/plain'
EXTRA = 'Content-Disposition: form-data; name="comment"'
PADDED = DATA + "\r\nX-Padding: " + "p" * 560

# name → (body, status through the gateway, stored value afterwards or None if unchanged)
CASES = {
    "parts_reversed": (_form((VT, b"File"), (DATA, b"new")), 204, b"new"),
    "extra_unknown_parts": (_form((EXTRA, b"x"), (DATA, b"new"), (VT, b"Bytes")), 204, b"new"),
    "missing_value_type": (_form((DATA, b"new")), 204, b"new"),
    "boundary_inside_data": (_form((DATA, b"a\r\n--" + B.encode() + b"X tail")), 204, b"a"),
    "unknown_value_type": (_form((DATA, b"new"), (VT, b"Json")), 400, None),
    "file_without_filename": (_form((DATA_NO_NAME, b"new"), (VT, b"File")), 400, None),
    "no_data_part": (_form((VT, b"Bytes")), 400, None),
    "no_closing_boundary": (_form((DATA, b"new"), (VT, b"Bytes"), close=False), 400, None),
    "lf_only_line_endings": (_form((DATA, b"new"), (VT, b"Bytes"), eol=b"\n"), 400, None),
    "600_byte_part_header": (_form((PADDED, b"new"), (VT, b"Bytes")), 400, None),
}


async def _value(client: aiohttp.ClientSession, engine_url: str, instance_id: str) -> bytes | None:
    url = f"{engine_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    async with client.get(url) as response:
        return await response.read() if response.status == 200 else None


FORM_TYPE = f"multipart/form-data; boundary={B}"
Body = bytes | AsyncIterator[bytes]


async def _send(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    body: Body,
    content_type: str | None = FORM_TYPE,
    *,
    method: str = "POST",
    query: str = "",
) -> tuple[int, Any]:
    """Sends `body` to the task's variable `doc`; (status, JSON answer or None)."""
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data{query}"
    headers = {"Content-Type": content_type} if content_type else {}
    async with client.request(method, url, data=body, headers=headers) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw else None


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
async def test_multipart_edge_case_gives_its_status_and_leaves_no_partial_write(
    case: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    body, status, stored = CASES[case]
    instance_id, task_id = previous
    answer_status, error = await _send(client, gateway_process.base_url, task_id, body)
    assert answer_status == status
    if status == 400:
        assert error["type"] == "InvalidRequestException"
        assert error["code"] is None
        assert error["message"]
    expected = engine_api.PREVIOUS if stored is None else stored
    assert await _value(client, engine_process.base_url, instance_id) == expected


async def test_upload_cut_by_the_client_mid_part_leaves_the_previous_value(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    head = _form((DATA, b""), close=False)[: -len(b"\r\n")]
    host, port = gateway_process.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /engine-rest/task/{task_id}/variables/doc/data HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: {engine_api.AUTHORIZATION}\r\n"
        f"Content-Type: multipart/form-data; boundary={B}\r\n"
        f"Content-Length: {len(head) + 5_000_000}\r\n\r\n".encode()
        + head
        + b"z" * 1_000_000
    )
    await writer.drain()
    writer.transport.abort()
    del reader

    # Wait for the gateway's own record of the abort, then look at the engine.
    marker = f"outcome=client_abort path=/engine-rest/task/{task_id}/variables/doc/data"
    deadline = asyncio.get_running_loop().time() + 10
    while marker not in gateway_process.running.log_path.read_text():
        assert asyncio.get_running_loop().time() < deadline, "gateway never logged the abort"
        await asyncio.sleep(0.05)
    assert await _value(client, engine_process.base_url, instance_id) == engine_api.PREVIOUS


@pytest.fixture(scope="module")
def small_limit_gateway(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    with processes.gateway(
        tmp_path_factory.mktemp("limited"), engine_process.base_url, "--max-upload-bytes", "100000"
    ) as started:
        yield started


async def test_declared_length_over_the_limit_gets_413_without_reaching_the_engine(
    client: aiohttp.ClientSession,
    small_limit_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body = _form((DATA, b"q" * 200_000), (VT, b"Bytes"))
    status, error = await _send(client, small_limit_gateway.base_url, task_id, body)
    assert status == 413
    assert error["type"] == "PayloadTooLargeException"
    assert await _value(client, engine_process.base_url, instance_id) == engine_api.PREVIOUS


async def test_chunked_body_over_the_limit_is_cut_with_413(
    client: aiohttp.ClientSession,
    small_limit_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    body = _form((DATA, b"q" * 200_000), (VT, b"Bytes"))

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    status, _ = await _send(client, small_limit_gateway.base_url, task_id, chunked())
    assert status == 413
    assert await _value(client, engine_process.base_url, instance_id) == engine_api.PREVIOUS


async def _metadata(engine_url: str, instance_id: str) -> dict[str, object]:
    result = engine_api.call(
        engine_url, "GET", f"/process-instance/{instance_id}/variables/doc?deserializeValues=false"
    )
    assert isinstance(result, dict)
    return result


async def test_raw_pdf_upload_with_filename_becomes_a_file_variable(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 100
    status, answer = await _send(  # PUT, as `curl -T report.pdf` sends it
        client,
        gateway_process.base_url,
        task_id,
        pdf,
        "application/pdf",
        method="PUT",
        query="?filename=report%202026%20%C3%A9.pdf",
    )
    assert status == 204, answer
    metadata = await _metadata(engine_process.base_url, instance_id)
    assert metadata["type"] == "File"
    assert metadata["valueInfo"] == {"filename": "report 2026 é.pdf", "mimeType": "application/pdf"}
    assert await _value(client, engine_process.base_url, instance_id) == pdf


async def test_raw_upload_without_filename_becomes_a_bytes_variable(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    content = bytes(range(256)) * 10
    status, _ = await _send(
        client, gateway_process.base_url, task_id, content, "application/octet-stream"
    )
    assert status == 204
    metadata = await _metadata(engine_process.base_url, instance_id)
    assert metadata["type"] == "Bytes"
    assert base64.b64decode(str(metadata["value"])) == content


async def test_raw_upload_charset_becomes_the_file_encoding(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    text = "Grüße\n".encode("iso-8859-1")

    async def chunked() -> AsyncIterator[bytes]:
        yield text

    status, _ = await _send(
        client,
        gateway_process.base_url,
        task_id,
        chunked(),
        "text/plain; charset=ISO-8859-1",
        query="?filename=note.txt",
    )
    assert status == 204
    metadata = await _metadata(engine_process.base_url, instance_id)
    assert metadata["valueInfo"] == {
        "filename": "note.txt",
        "mimeType": "text/plain",
        "encoding": "ISO-8859-1",
    }
    assert await _value(client, engine_process.base_url, instance_id) == text


async def test_raw_upload_value_type_can_be_chosen(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    gateway = gateway_process.base_url
    status, _ = await _send(
        client, gateway, task_id, b"abc", None, query="?filename=a.bin&valueType=Bytes"
    )
    assert status == 204
    assert (await _metadata(engine_process.base_url, instance_id))["type"] == "Bytes"
    status, error = await _send(client, gateway, task_id, b"abc", None, query="?valueType=File")
    assert status == 400
    assert "filename" in error["message"]
