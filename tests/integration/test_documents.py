"""The document store in front of the real engine: large files go to the store, the engine
keeps a signed reference of the same type, and downloads resolve it, ranges and all.

Every test runs against each backend: the disk (`file://`) and SeaweedFS over S3.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from gateway import reference
from tests import processes
from tests.integration import engine_api, webapps
from tests.integration.documents import Backend, key_file, new_key

pytestmark = pytest.mark.engine

THRESHOLD = 1 << 20
SIZE = 3_000_000  # above the threshold: offloaded
KEY, RETIRED_KEY = new_key(), new_key()


@pytest.fixture(scope="module")
def gateway(
    backend: Backend, engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    work = tmp_path_factory.mktemp("gateway")
    keys = key_file(work, KEY, RETIRED_KEY)
    args = (*backend.gateway_args, "--document-key-file", str(keys))
    env = backend.s3.credentials if backend.s3 is not None else {}
    with processes.gateway(
        work, engine_process.base_url, *args, "--offload-above-bytes", str(THRESHOLD), env=env
    ) as started:
        yield started


def _content(size: int, seed: int) -> bytes:
    return b"".join(engine_api.pseudo_random_chunks(size, seed))


async def _put(
    client: aiohttp.ClientSession, url: str, body: bytes | AsyncIterator[bytes], **query: str
) -> tuple[int, str]:
    headers = {"Content-Type": "application/pdf"}
    async with client.put(url, data=body, params=query, headers=headers) as response:
        return response.status, await response.text()


def _variable_url(base: str, instance_id: str, name: str) -> str:
    return f"{base}/engine-rest/process-instance/{instance_id}/variables/{name}/data"


def _reference_in_engine(engine_url: str, instance_id: str, name: str) -> bytes:
    return engine_api.get_bytes(_variable_url(engine_url, instance_id, name))


def _verified_in_engine(engine_url: str, instance_id: str, name: str) -> reference.Reference:
    """The variable's content in the engine: a reference signed with KEY."""
    found = reference.decode(_reference_in_engine(engine_url, instance_id, name), [KEY.encode()])
    assert isinstance(found, reference.Reference)
    return found


@pytest.fixture
async def offloaded(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    instance: tuple[str, str],
) -> tuple[str, bytes]:
    """A fresh instance whose variable `doc` is a 3 MB File offloaded by a raw PUT."""
    instance_id, _ = instance
    content = _content(SIZE, seed=len(instance_id))
    url = _variable_url(gateway.base_url, instance_id, "doc")
    status, text = await _put(client, url, content, filename="report.pdf")
    assert status == 204, text
    return instance_id, content


async def test_a_large_raw_upload_is_stored_and_the_engine_keeps_a_reference(
    offloaded: tuple[str, bytes], engine_process: processes.Running, backend: Backend
) -> None:
    instance_id, content = offloaded
    kept = _reference_in_engine(engine_process.base_url, instance_id, "doc")
    assert len(kept) <= reference.MAX_BYTES
    found = reference.decode(kept, [KEY.encode()])
    assert isinstance(found, reference.Reference)
    content_hash = hashlib.sha256(content).hexdigest()
    assert (found.content_hash, found.size) == (content_hash, SIZE)
    assert (found.file_name, found.content_type) == ("report.pdf", "application/pdf")
    prefix = backend.prefix
    assert backend.read(f"{prefix}content/{content_hash}") == content
    assert backend.read(f"{prefix}documents/{found.document_id}") == kept
    assert not backend.objects(f"{prefix}staging/")


async def test_the_variable_downloads_as_the_file_named_with_its_etag(
    client: aiohttp.ClientSession, gateway: processes.Gateway, offloaded: tuple[str, bytes]
) -> None:
    instance_id, content = offloaded
    async with client.get(_variable_url(gateway.base_url, instance_id, "doc")) as response:
        body = await response.read()
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"].startswith(
            'attachment; filename="report.pdf"'
        )
        assert response.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Length"] == str(SIZE)
    assert body == content


@pytest.mark.parametrize(
    ("range_value", "start", "end"),
    [
        ("bytes=0-99", 0, 100),  # the first bytes
        ("bytes=1000000-1000999", 1_000_000, 1_001_000),  # the middle
        ("bytes=-5000", SIZE - 5000, SIZE),  # a suffix
        ("bytes=2999990-", SIZE - 10, SIZE),  # from an offset to the end
    ],
)
async def test_a_range_downloads_those_bytes(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    offloaded: tuple[str, bytes],
    range_value: str,
    start: int,
    end: int,
) -> None:
    instance_id, content = offloaded
    url = _variable_url(gateway.base_url, instance_id, "doc")
    async with client.get(url, headers={"Range": range_value}) as response:
        body = await response.read()
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
    assert body == content[start:end]


async def test_an_unsatisfiable_range_is_416_with_the_size(
    client: aiohttp.ClientSession, gateway: processes.Gateway, offloaded: tuple[str, bytes]
) -> None:
    instance_id, _ = offloaded
    url = _variable_url(gateway.base_url, instance_id, "doc")
    async with client.get(url, headers={"Range": f"bytes={SIZE}-"}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"
        assert (await response.json())["type"] == "RangeNotSatisfiableException"


@pytest.mark.parametrize("fresh", [True, False])
async def test_if_range_serves_the_range_only_while_the_document_is_the_same(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    offloaded: tuple[str, bytes],
    fresh: bool,
) -> None:
    instance_id, content = offloaded
    tag = f'"{hashlib.sha256(content if fresh else b"before").hexdigest()}"'
    url = _variable_url(gateway.base_url, instance_id, "doc")
    async with client.get(url, headers={"Range": "bytes=0-9", "If-Range": tag}) as response:
        body = await response.read()
        assert response.status == (206 if fresh else 200)
    assert body == (content[:10] if fresh else content)


async def test_head_answers_the_documents_headers_without_its_body(
    client: aiohttp.ClientSession, gateway: processes.Gateway, offloaded: tuple[str, bytes]
) -> None:
    instance_id, content = offloaded
    async with client.head(_variable_url(gateway.base_url, instance_id, "doc")) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(SIZE)
        assert response.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        assert await response.read() == b""


async def test_a_value_under_the_threshold_stays_in_the_engine(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(THRESHOLD, seed=7)  # not above it
    status, text = await _put(
        client, _variable_url(gateway.base_url, instance_id, "small"), content
    )
    assert status == 204, text
    assert _reference_in_engine(engine_process.base_url, instance_id, "small") == content


def _written_into_engine(engine_url: str, instance_id: str, name: str, data: bytes) -> None:
    """A File variable written straight into the engine, around the gateway."""
    form = engine_api.variable_form(data, len(data), value_type="File", filename="x.pdf")
    engine_api.call(
        engine_url,
        "POST",
        f"/process-instance/{instance_id}/variables/{name}/data",
        form.small_body(),
        content_type=form.content_type,
    )


async def test_a_copied_reference_resolves(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    offloaded: tuple[str, bytes],
) -> None:
    instance_id, content = offloaded
    kept = _reference_in_engine(engine_process.base_url, instance_id, "doc")
    _written_into_engine(engine_process.base_url, instance_id, "copy", kept)
    async with client.get(_variable_url(gateway.base_url, instance_id, "copy")) as response:
        assert response.status == 200
        assert await response.read() == content


async def test_a_reference_signed_with_a_retired_key_resolves(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    offloaded: tuple[str, bytes],
) -> None:
    instance_id, content = offloaded
    found = _verified_in_engine(engine_process.base_url, instance_id, "doc")
    old = reference.encode(found, RETIRED_KEY.encode())
    _written_into_engine(engine_process.base_url, instance_id, "old", old)
    async with client.get(_variable_url(gateway.base_url, instance_id, "old")) as response:
        assert response.status == 200
        assert await response.read() == content


@pytest.mark.parametrize("change", ["forged", "altered"])
async def test_a_reference_the_gateway_did_not_sign_is_served_as_the_small_file_it_is(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    offloaded: tuple[str, bytes],
    change: str,
) -> None:
    instance_id, _ = offloaded
    found = _verified_in_engine(engine_process.base_url, instance_id, "doc")
    if change == "forged":  # signed with a key the gateway does not have
        written = reference.encode(found, new_key().encode())
    else:  # a valid reference, pointed at other content
        members = json.loads(_reference_in_engine(engine_process.base_url, instance_id, "doc"))
        members["metadata"]["size"] = 1
        written = json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode()
    _written_into_engine(engine_process.base_url, instance_id, "forged", written)
    async with client.get(_variable_url(gateway.base_url, instance_id, "forged")) as response:
        assert response.status == 200
        assert await response.read() == written


async def test_a_document_whose_content_is_gone_is_a_502_and_whose_record_is_gone_a_404(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    prefix = backend.prefix
    for name, lost in (("lost", "content"), ("deleted", "documents")):
        # Content of its own, so that no other test's document shares it.
        status, _ = await _put(
            client,
            _variable_url(gateway.base_url, instance_id, name),
            _content(SIZE, seed=hash(name)),
        )
        assert status == 204
        found = _verified_in_engine(engine_process.base_url, instance_id, name)
        key = found.content_hash if lost == "content" else found.document_id
        backend.delete(f"{prefix}{lost}/{key}")
        async with client.get(_variable_url(gateway.base_url, instance_id, name)) as response:
            answer = await response.json()
        expected = (
            (502, "DocumentMissingException")
            if lost == "content"
            else (404, "DocumentNotFoundException")
        )
        assert (response.status, answer["type"]) == expected


async def test_a_client_leaving_mid_upload_leaves_nothing_in_the_store_or_the_engine(
    gateway: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    before = backend.objects()
    port = int(gateway.base_url.rsplit(":", 1)[1])
    path = f"/engine-rest/process-instance/{instance_id}/variables/cut/data?filename=cut.bin"
    with socket.create_connection((processes.LOOPBACK, port)) as sock:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: {engine_api.AUTHORIZATION}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {40 << 20}\r\n\r\n".encode()
        )
        for _ in range(20):  # 20 MiB of 40, then gone
            sock.sendall(b"\0" * (1 << 20))

    def settled() -> bool:
        return backend.objects() == before and not backend.open_uploads()

    await asyncio.to_thread(
        processes.wait_until, settled, timeout_seconds=30, what="the store as it was"
    )
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName=cut"
    assert engine_api.call(engine_process.base_url, "GET", query) == []


@pytest.fixture(scope="module")
def scanning_gateway_with_store(
    backend: Backend,
    engine_process: processes.Running,
    clamd_process: processes.Clamd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.Gateway]:
    work = tmp_path_factory.mktemp("gateway")
    args = (*backend.gateway_args, "--document-key-file", str(key_file(work, KEY)))
    env = backend.s3.credentials if backend.s3 is not None else {}
    with processes.gateway(
        work,
        engine_process.base_url,
        *args,
        "--offload-above-bytes",
        str(THRESHOLD),
        "--clamd",
        clamd_process.tcp_url,
        env=env,
    ) as started:
        yield started


async def test_malware_offloaded_is_refused_and_nothing_is_stored_anywhere(
    client: aiohttp.ClientSession,
    scanning_gateway_with_store: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    before = backend.objects()
    infected = _content(SIZE // 2, seed=1) + processes.EICAR + _content(SIZE // 2, seed=2)
    url = _variable_url(scanning_gateway_with_store.base_url, instance_id, "eicar")
    status, text = await _put(client, url, infected, filename="eicar.pdf")
    assert (status, json.loads(text)["type"]) == (422, "MalwareFoundException")
    assert backend.objects() == before
    assert backend.open_uploads() == []
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName=eicar"
    assert engine_api.call(engine_process.base_url, "GET", query) == []


async def test_a_clean_file_offloaded_with_scanning_on_is_stored(
    client: aiohttp.ClientSession,
    scanning_gateway_with_store: processes.Gateway,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=3)
    url = _variable_url(scanning_gateway_with_store.base_url, instance_id, "clean")
    status, text = await _put(client, url, content, filename="clean.pdf")
    assert status == 204, text
    async with client.get(url) as response:
        assert await response.read() == content


def _form(
    content: bytes,
    *,
    value_type: str | None,
    filename: str | None = "report.pdf",
    value_type_first: bool = False,
    extra_data: bytes | None = None,
) -> engine_api.Form:
    """A variable form; its valueType after the content unless asked, and an earlier `data`
    part (which the engine ignores: the later wins) when `extra_data` is given."""
    boundary = "----documents" + hashlib.sha256(content[:64]).hexdigest()[:16]
    disposition = 'form-data; name="data"' + (f'; filename="{filename}"' if filename else "")
    parts: list[tuple[bytes, bytes, int]] = []
    if extra_data is not None:
        head = engine_api.part_head(boundary, not parts, disposition, "application/pdf")
        parts.append((head, extra_data, len(extra_data)))
    if value_type is not None and value_type_first:
        head = engine_api.part_head(
            boundary, not parts, 'form-data; name="valueType"', "text/plain"
        )
        parts.append((head, value_type.encode(), len(value_type)))
    head = engine_api.part_head(boundary, not parts, disposition, "application/pdf")
    parts.append((head, content, len(content)))
    if value_type is not None and not value_type_first:
        head = engine_api.part_head(boundary, False, 'form-data; name="valueType"', "text/plain")
        parts.append((head, value_type.encode(), len(value_type)))
    return engine_api.Form(boundary, tuple(parts))


def _variable(engine_url: str, instance_id: str, name: str) -> dict[str, object]:
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName={name}"
    found: list[dict[str, object]] = engine_api.call(engine_url, "GET", query)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("value_type_first", [True, False])
async def test_a_large_file_in_a_multipart_form_is_offloaded_and_downloads_named(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
    value_type_first: bool,
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=11)
    form = _form(content, value_type="File", value_type_first=value_type_first)
    url = _variable_url(gateway.base_url, instance_id, "form")
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text
    _verified_in_engine(engine_process.base_url, instance_id, "form")
    variable = _variable(engine_process.base_url, instance_id, "form")
    assert variable["type"] == "File"
    assert variable["valueInfo"] == {"filename": "report.pdf", "mimeType": "application/pdf"}
    async with client.get(url) as response:
        assert response.headers["Content-Disposition"].startswith(
            'attachment; filename="report.pdf"'
        )
        assert await response.read() == content


async def test_a_large_bytes_value_in_a_form_stays_bytes(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=12)
    url = _variable_url(gateway.base_url, instance_id, "blob")
    status, text = await engine_api.post_form(
        client, url, _form(content, value_type=None, filename=None)
    )
    assert status == 204, text
    assert _variable(engine_process.base_url, instance_id, "blob")["type"] == "Bytes"
    async with client.get(url) as response:
        assert response.headers["Content-Disposition"] == 'attachment; filename="blob"'
        assert await response.read() == content


async def test_a_small_file_in_a_form_stays_in_the_engine_as_it_came(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(1000, seed=13)
    url = _variable_url(gateway.base_url, instance_id, "tiny")
    status, text = await engine_api.post_form(client, url, _form(content, value_type="File"))
    assert status == 204, text
    assert _reference_in_engine(engine_process.base_url, instance_id, "tiny") == content
    variable = _variable(engine_process.base_url, instance_id, "tiny")
    assert (variable["type"], variable["valueInfo"]) == (
        "File",
        {"filename": "report.pdf", "mimeType": "application/pdf"},
    )


async def test_a_large_string_in_a_form_reaches_the_engine_and_nothing_stays_in_the_store(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    before = backend.objects()
    content = b"a" * (THRESHOLD + 10)
    url = _variable_url(gateway.base_url, instance_id, "text")
    status, text = await engine_api.post_form(client, url, _form(content, value_type="String"))
    assert status == 204, text
    assert _variable(engine_process.base_url, instance_id, "text")["type"] == "String"
    assert backend.objects() == before


async def test_of_two_data_parts_the_later_is_stored_and_the_earlier_leaves_nothing(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    earlier, later = _content(SIZE, seed=14), _content(SIZE, seed=15)
    url = _variable_url(gateway.base_url, instance_id, "twice")
    form = _form(later, value_type="File", extra_data=earlier)
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text
    async with client.get(url) as response:
        assert await response.read() == later
    earlier_hash = hashlib.sha256(earlier).hexdigest()
    assert not any(earlier_hash in key for key in backend.objects())


async def test_an_invalid_form_is_refused_and_leaves_nothing_in_the_store(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    before = backend.objects()
    form = _form(_content(SIZE, seed=16), value_type="File", filename=None)  # File needs a name
    url = _variable_url(gateway.base_url, instance_id, "invalid")
    status, text = await engine_api.post_form(client, url, form)
    assert (status, json.loads(text)["type"]) == (400, "InvalidRequestException")
    assert backend.objects() == before
    assert backend.open_uploads() == []


def _json_value(content: bytes, *, type_name: str = "File", value_first: bool = False) -> bytes:
    value = base64.b64encode(content).decode()
    info = {"filename": "report.pdf", "mimeType": "application/pdf"} if type_name == "File" else {}
    members = [("type", type_name), ("value", value), ("valueInfo", info)]
    if value_first:
        members = [members[1], members[0], members[2]]
    return json.dumps(dict(members)).encode()


async def _send_json(
    client: aiohttp.ClientSession, method: str, url: str, body: bytes
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    async with client.request(method, url, data=body, headers=headers) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    ("type_name", "value_first"), [("File", False), ("File", True), ("Bytes", False)]
)
async def test_a_large_value_in_json_is_offloaded_and_downloads_as_the_file(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
    type_name: str,
    value_first: bool,
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=21)
    url = f"{gateway.base_url}/engine-rest/process-instance/{instance_id}/variables/json"
    body = _json_value(content, type_name=type_name, value_first=value_first)
    status, text = await _send_json(client, "PUT", url, body)
    assert status == 204, text
    _verified_in_engine(engine_process.base_url, instance_id, "json")
    assert _variable(engine_process.base_url, instance_id, "json")["type"] == type_name
    async with client.get(_variable_url(gateway.base_url, instance_id, "json")) as response:
        assert await response.read() == content


async def test_a_file_beyond_the_engines_json_limit_is_taken_through_a_variables_map(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(16_000_000, seed=22)  # 21.3 million base64 characters: over 20,000,000
    small = _content(1000, seed=23)
    body = (
        b'{"modifications":{"big":'
        + _json_value(content)
        + b',"small":'
        + _json_value(small)
        + b"}}"
    )
    url = f"{gateway.base_url}/engine-rest/process-instance/{instance_id}/variables"
    status, text = await _send_json(client, "POST", url, body)
    assert status == 204, text
    assert _reference_in_engine(engine_process.base_url, instance_id, "small") == small
    async with client.get(_variable_url(gateway.base_url, instance_id, "big")) as response:
        assert await response.read() == content


async def test_a_large_base64_string_in_json_gets_the_engines_own_answer_and_nothing_is_stored(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    """Its value comes before its type: it is decoded and streamed into the store as a file
    might be, then its type says String. The engine gets it as sent (and refuses a String
    this long, as it does direct)."""
    instance_id, _ = instance
    before = backend.objects()
    text_value = base64.b64encode(_content(SIZE, seed=24)).decode()
    body = json.dumps({"value": text_value, "type": "String"}).encode()
    path = f"/engine-rest/process-instance/{instance_id}/variables/text"
    direct = await _send_json(client, "PUT", engine_process.base_url + path, body)
    assert await _send_json(client, "PUT", gateway.base_url + path, body) == direct
    assert backend.objects() == before
    assert backend.open_uploads() == []


async def test_malware_in_json_offloaded_is_refused_and_nothing_is_stored(
    client: aiohttp.ClientSession,
    scanning_gateway_with_store: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    before = backend.objects()
    infected = _content(SIZE, seed=25) + processes.EICAR
    base = scanning_gateway_with_store.base_url
    url = f"{base}/engine-rest/process-instance/{instance_id}/variables/bad"
    status, text = await _send_json(client, "PUT", url, _json_value(infected))
    assert (status, json.loads(text)["type"]) == (422, "MalwareFoundException")
    assert backend.objects() == before
    assert backend.open_uploads() == []
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName=bad"
    assert engine_api.call(engine_process.base_url, "GET", query) == []


def _metric(gateway: processes.Gateway, sample: str) -> float:
    text = engine_api.get_bytes(gateway.admin_url + "/metrics").decode()
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(sample + " ")]
    return float(values[0]) if values else 0.0


async def test_offloads_resolutions_and_store_bytes_are_counted(
    client: aiohttp.ClientSession, gateway: processes.Gateway, instance: tuple[str, str]
) -> None:
    offloaded = 'engine_gateway_offloaded_total{door="raw"}'
    resolved = 'engine_gateway_resolved_total{outcome="document"}'
    into = 'engine_gateway_store_bytes_total{direction="upload"}'
    out = 'engine_gateway_store_bytes_total{direction="download"}'
    before = {name: _metric(gateway, name) for name in (offloaded, resolved, into, out)}
    instance_id, _ = instance
    url = _variable_url(gateway.base_url, instance_id, "counted")
    status, _ = await _put(client, url, _content(SIZE, seed=31))
    assert status == 204
    async with client.get(url) as response:
        assert len(await response.read()) == SIZE
    after = {name: _metric(gateway, name) for name in before}
    assert after[offloaded] - before[offloaded] == 1
    assert after[resolved] - before[resolved] == 1
    assert after[into] - before[into] == SIZE
    assert after[out] - before[out] == SIZE


async def test_the_engines_refusal_after_the_content_was_stored_passes_and_leaves_it_for_the_sweep(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    backend: Backend,
) -> None:
    content = _content(SIZE, seed=41)
    path = "/engine-rest/process-instance/no-such-instance/variables/doc/data"
    status, text = await _put(client, gateway.base_url + path, content, filename="x.pdf")
    # The engine's own answer: it has no such instance (as it answers direct).
    form = engine_api.variable_form(b"x", 1, value_type="File", filename="x.pdf")
    engine_status, engine_text = await engine_api.post_form(
        client, engine_process.base_url + path, form
    )
    assert (status, json.loads(text)) == (engine_status, json.loads(engine_text))
    content_hash = hashlib.sha256(content).hexdigest()
    assert f"{backend.prefix}content/{content_hash}" in backend.objects()


@pytest.fixture(scope="module")
def offloading_everything(
    backend: Backend, engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    """--offload-above-bytes 0: every File and Bytes value goes to the store."""
    work = tmp_path_factory.mktemp("everything")
    args = (*backend.gateway_args, "--document-key-file", str(key_file(work, KEY, RETIRED_KEY)))
    env = backend.s3.credentials if backend.s3 is not None else {}
    with processes.gateway(
        work, engine_process.base_url, *args, "--offload-above-bytes", "0", env=env
    ) as started:
        yield started


async def test_with_a_threshold_of_zero_a_small_file_is_offloaded(
    client: aiohttp.ClientSession,
    offloading_everything: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    url = _variable_url(offloading_everything.base_url, instance_id, "small")
    status, text = await _put(client, url, b"ten bytes!")
    assert status == 204, text
    _verified_in_engine(engine_process.base_url, instance_id, "small")
    async with client.get(url) as response:
        assert await response.read() == b"ten bytes!"


@pytest.mark.parametrize("door", ["raw", "multipart", "json"])
async def test_a_valid_reference_uploaded_is_stored_as_it_is_never_offloaded_again(
    client: aiohttp.ClientSession,
    offloading_everything: processes.Gateway,
    engine_process: processes.Running,
    offloaded: tuple[str, bytes],
    door: str,
) -> None:
    """Attaching a document: its reference written to another variable, through any door."""
    instance_id, content = offloaded
    kept = _reference_in_engine(engine_process.base_url, instance_id, "doc")
    base = offloading_everything.base_url
    name = f"attached_{door}"
    if door == "raw":
        status, text = await _put(client, _variable_url(base, instance_id, name), kept)
    elif door == "multipart":
        form = _form(kept, value_type="File")
        status, text = await engine_api.post_form(
            client, _variable_url(base, instance_id, name), form
        )
    else:
        url = f"{base}/engine-rest/process-instance/{instance_id}/variables/{name}"
        status, text = await _send_json(client, "PUT", url, _json_value(kept))
    assert status == 204, text
    assert _reference_in_engine(engine_process.base_url, instance_id, name) == kept
    async with client.get(_variable_url(base, instance_id, name)) as response:
        assert await response.read() == content


async def test_cockpit_downloads_a_document_with_its_session_as_any_file(
    gateway: processes.Gateway, offloaded: tuple[str, bytes], engine_process: processes.Running
) -> None:
    """The webapps' engine API is an API root: the same resolution, with a session cookie."""
    instance_id, content = offloaded
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName=doc"
    [variable] = engine_api.call(engine_process.base_url, "GET", query)
    path = f"{webapps.API}/variable-instance/{variable['id']}/data"
    async with webapps.logged_in(gateway.base_url) as session:
        async with session.client.get(session.url(path)) as response:
            assert response.status == 200
            assert response.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
            assert await response.read() == content
