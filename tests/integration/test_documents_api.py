"""The documents API in front of the real engine, on both stores (the disk and SeaweedFS):
upload once, read with the content hash, attach to variables through every door, delete,
and hand out links that need no credentials until they expire.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway import reference
from gateway.config import Config, ConfigError
from tests import processes
from tests.integration import engine_api, webapps
from tests.integration.documents import Backend, new_key, store_gateway

pytestmark = pytest.mark.engine

KEY = new_key()
SIZE = 2_500_000
EXPIRY_DEADLINE_SECONDS = 30.0


@pytest.fixture(scope="module")
def gateway(
    backend: Backend,
    engine_process: processes.Running,
    clamd_process: processes.Clamd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.Gateway]:
    with store_gateway(
        tmp_path_factory.mktemp("gateway"),
        engine_process.base_url,
        "--clamd",
        clamd_process.tcp_url,
        "--document-link-max-seconds",
        "600",
        backend=backend,
        key=KEY,
    ) as started:
        yield started


def _content(size: int, seed: int) -> bytes:
    return b"".join(engine_api.pseudo_random_chunks(size, seed))


def _form(
    files: list[tuple[str, bytes, str | None, str]], metadata: tuple[str, Any] | None = None
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for field_name, content, name, content_type in files:
        form.add_field(field_name, content, filename=name, content_type=content_type)
    if metadata is not None:  # a str is sent as it is, anything else as JSON
        text = metadata[1] if isinstance(metadata[1], str) else json.dumps(metadata[1])
        form.add_field(metadata[0], text, content_type="application/json")
    return form


async def _upload(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    content: bytes,
    name: str = "report.pdf",
    metadata: dict[str, Any] | None = None,
    content_type: str = "application/pdf",
    document_id: str | None = None,
) -> tuple[int, bytes]:
    form = _form(
        [("file", content, name, content_type)],
        None if metadata is None else ("metadata", metadata),
    )
    query = {} if document_id is None else {"documentId": document_id}
    async with client.post(f"{gateway.base_url}/documents", data=form, params=query) as response:
        return response.status, await response.read()


async def _created(
    client: aiohttp.ClientSession, gateway: processes.Gateway, content: bytes, **kwargs: Any
) -> tuple[bytes, dict[str, Any]]:
    status, body = await _upload(client, gateway, content, **kwargs)
    assert status == 201, body
    return body, json.loads(body)


def _document_url(gateway: processes.Gateway, made: dict[str, Any], content_hash: str = "") -> str:
    return (
        f"{gateway.base_url}/documents/{made['documentId']}"
        f"?contentHash={content_hash or made['contentHash']}"
    )


# --- upload and read ------------------------------------------------------------------------


async def test_an_upload_answers_camunda_8s_reference_and_reads_back_named(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    content = _content(SIZE, seed=1)
    signed, made = await _created(
        client, gateway, content, metadata={"customProperties": {"case": "A-17"}}
    )
    content_hash = hashlib.sha256(content).hexdigest()
    assert made["storeId"] == backend.store_id
    assert made["contentHash"] == content_hash
    assert made["metadata"] == {
        "contentType": "application/pdf",
        "fileName": "report.pdf",
        "size": SIZE,
        "expiresAt": None,
        "customProperties": {"case": "A-17"},
    }
    found = reference.decode(signed, [KEY.encode()])
    assert isinstance(found, reference.Reference)
    assert backend.read(f"{backend.prefix}content/{content_hash}") == content
    assert backend.read(f"{backend.prefix}kept/{made['documentId']}") == signed
    async with client.get(_document_url(gateway, made)) as response:
        assert response.status == 200
        assert await response.read() == content
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"].startswith(
            'attachment; filename="report.pdf"'
        )
        assert response.headers["ETag"] == f'"{content_hash}"'
        # A document may be deleted or expire at any moment: no cache in between keeps it.
        assert response.headers["Cache-Control"] == "private, no-store"


async def test_a_range_and_head_read_the_document_as_any_download(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    content = _content(SIZE, seed=2)
    _, made = await _created(client, gateway, content)
    url = _document_url(gateway, made)
    async with client.get(url, headers={"Range": "bytes=1000-1999"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
        assert await response.read() == content[1000:2000]
    async with client.head(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(SIZE)
        assert await response.read() == b""


async def test_a_read_may_ask_for_inline_and_answers_304_to_its_etag(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"%PDF-1.4 not much", name="a.pdf")
    url = _document_url(gateway, made)
    async with client.get(url + "&disposition=inline") as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"].startswith('inline; filename="a.pdf"')
        assert response.headers["Content-Security-Policy"] == "sandbox"
        tag = response.headers["ETag"]
    async with client.get(url, headers={"If-None-Match": tag}) as response:
        assert (response.status, await response.read()) == (304, b"")
    async with client.get(url + "&disposition=sideways") as response:
        assert response.status == 400


async def test_a_wrong_or_missing_hash_serves_nothing(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    content = _content(SIZE, seed=3)
    _, made = await _created(client, gateway, content)
    wrong = hashlib.sha256(b"something else").hexdigest()
    async with client.get(_document_url(gateway, made, wrong)) as response:
        body = await response.read()
        assert response.status == 404
        assert json.loads(body)["type"] == "DocumentNotFoundException"
    async with client.get(f"{gateway.base_url}/documents/{made['documentId']}") as response:
        assert response.status == 400
        assert json.loads(await response.read())["type"] == "InvalidRequestException"


# --- who may ----------------------------------------------------------------------------------


async def test_without_credentials_or_with_wrong_ones_every_call_but_a_link_is_401(
    gateway: processes.Gateway, client: aiohttp.ClientSession
) -> None:
    _, made = await _created(client, gateway, b"a small document")
    # Not the admin's own account: failed logins would make the engine delay its next ones.
    wrong = {"Authorization": "Basic " + base64.b64encode(b"nobody:wrong").decode()}
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, wrong):
            for method, url in (
                ("GET", _document_url(gateway, made)),
                ("POST", f"{gateway.base_url}/documents"),
                ("DELETE", _document_url(gateway, made)),
                ("POST", _document_url(gateway, made).replace("?", "/links?")),
            ):
                async with anonymous.request(method, url, headers=headers) as response:
                    answer = json.loads(await response.read())
                    assert response.status == 401, (method, url)
                    assert answer == {
                        "type": "NotAuthenticatedException",
                        "message": answer["message"],
                        "code": None,
                    }
    async with client.get(_document_url(gateway, made)) as response:
        assert await response.read() == b"a small document"


async def test_a_webapp_session_may_upload_with_its_xsrf_token_and_not_without(
    gateway: processes.Gateway,
) -> None:
    async with webapps.logged_in(gateway.base_url) as session:
        url = session.url("/documents")
        form = _form([("file", b"from cockpit", "note.txt", "text/plain")])
        async with session.client.post(url, data=form) as response:
            assert response.status == 403
            assert json.loads(await response.read())["type"] == "CsrfPreventionException"
        form = _form([("file", b"from cockpit", "note.txt", "text/plain")])
        async with session.client.post(url, data=form, headers=session.headers()) as response:
            assert response.status == 201
            made = json.loads(await response.read())
        async with session.client.get(_document_url(gateway, made)) as response:
            assert (response.status, await response.read()) == (200, b"from cockpit")


# --- batch, malware -----------------------------------------------------------------------


async def test_a_batch_with_one_infected_file_stores_the_others_and_says_which_failed(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    good, other = _content(SIZE, seed=4), b"the second one"
    infected = _content(1000, seed=5) + processes.EICAR
    form = _form(
        [
            ("files", good, "good.bin", "application/octet-stream"),
            ("files", infected, "eicar.bin", "application/octet-stream"),
            ("files", other, "other.txt", "text/plain"),
        ],
        ("metadataList", [{}, {}, {"fileName": "renamed.txt"}]),
    )
    before = backend.objects(f"{backend.prefix}content/")
    async with client.post(f"{gateway.base_url}/documents/batch", data=form) as response:
        assert response.status == 207
        answer = json.loads(await response.read())
    created = answer["createdDocuments"]
    assert [made["metadata"]["fileName"] for made in created] == ["good.bin", "renamed.txt"]
    [failed] = answer["failedDocuments"]
    assert (failed["fileName"], failed["status"], failed["title"]) == (
        "eicar.bin",
        422,
        "MalwareFoundException",
    )
    added = backend.objects(f"{backend.prefix}content/") - before
    assert added == {
        f"{backend.prefix}content/{hashlib.sha256(body).hexdigest()}" for body in (good, other)
    }
    assert backend.objects(f"{backend.prefix}staging/") == set()
    for made, body in zip(created, (good, other), strict=True):
        async with client.get(_document_url(gateway, made)) as response:
            assert await response.read() == body


async def test_a_batch_of_good_files_is_201_with_no_failures(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    form = _form(
        [("files", b"one", "1.txt", "text/plain"), ("file", b"two", "2.txt", "text/plain")]
    )
    async with client.post(f"{gateway.base_url}/documents/batch", data=form) as response:
        assert response.status == 201
        answer = json.loads(await response.read())
    assert answer["failedDocuments"] == []
    names = [made["metadata"]["fileName"] for made in answer["createdDocuments"]]
    assert names == ["1.txt", "2.txt"]


async def test_eicar_is_422_and_nothing_is_stored(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    before = backend.objects()
    status, body = await _upload(client, gateway, processes.EICAR, name="eicar.com")
    assert (status, json.loads(body)["type"]) == (422, "MalwareFoundException")
    assert backend.objects() == before
    assert backend.open_uploads() == []


# --- attach -----------------------------------------------------------------------------------


def _variable_url(base: str, instance_id: str, name: str) -> str:
    return f"{base}/engine-rest/process-instance/{instance_id}/variables/{name}"


async def _attached_three_ways(
    client: aiohttp.ClientSession, gateway: processes.Gateway, instance_id: str, signed: bytes
) -> None:
    """`signed` written as File variables `multipart`, `raw` and `json`."""
    base = _variable_url(gateway.base_url, instance_id, "")
    form = aiohttp.FormData()
    form.add_field("data", signed, filename="attached.pdf", content_type="application/pdf")
    form.add_field("valueType", "File")
    async with client.post(base + "multipart/data", data=form) as response:
        assert response.status == 204, await response.text()
    headers = {"Content-Type": "application/pdf"}
    async with client.put(
        base + "raw/data", data=signed, params={"filename": "attached.pdf"}, headers=headers
    ) as response:
        assert response.status == 204, await response.text()
    value = {
        "type": "File",
        "value": base64.b64encode(signed).decode(),
        "valueInfo": {"filename": "attached.pdf", "mimeType": "application/pdf"},
    }
    async with client.put(base + "json", json=value) as response:
        assert response.status == 204, await response.text()


async def test_a_reference_attached_through_every_door_downloads_as_the_document(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=6)
    signed, _ = await _created(client, gateway, content)
    await _attached_three_ways(client, gateway, instance_id, signed)
    for name in ("multipart", "raw", "json"):
        kept = engine_api.get_bytes(
            _variable_url(engine_process.base_url, instance_id, name) + "/data"
        )
        assert kept == signed, name
        async with client.get(_variable_url(gateway.base_url, instance_id, name) + "/data") as got:
            assert got.status == 200
            assert await got.read() == content, name


async def test_deleting_a_document_404s_its_variables_and_spares_another_sharing_its_content(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    backend: Backend,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=7)
    first, made = await _created(client, gateway, content)
    second, _ = await _created(client, gateway, content)
    for name, signed in (("first", first), ("second", second)):
        async with client.put(
            _variable_url(gateway.base_url, instance_id, name) + "/data",
            data=signed,
            params={"filename": f"{name}.pdf"},
        ) as response:
            assert response.status == 204
    async with client.delete(_document_url(gateway, made)) as response:
        assert response.status == 204
    async with client.get(_document_url(gateway, made)) as response:
        assert response.status == 404
    url = _variable_url(gateway.base_url, instance_id, "first") + "/data"
    async with client.get(url) as response:
        assert response.status == 404
        assert json.loads(await response.read())["type"] == "DocumentNotFoundException"
    async with client.get(_variable_url(gateway.base_url, instance_id, "second") + "/data") as got:
        assert (got.status, await got.read()) == (200, content)
    content_key = f"{backend.prefix}content/{made['contentHash']}"
    assert backend.read(content_key) == content


# --- links ------------------------------------------------------------------------------------


async def _link(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    made: dict[str, Any],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    url = _document_url(gateway, made).replace("?", "/links?")
    async with client.post(url, json=body or {}) as response:
        assert response.status == 201, await response.text()
        answer: dict[str, Any] = json.loads(await response.read())
        return answer


async def test_a_link_is_served_without_credentials_and_with_a_range(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    content = _content(SIZE, seed=8)
    _, made = await _created(client, gateway, content)
    started = time.time()
    link = await _link(client, gateway, made, {"timeToLive": 120_000})
    expires = (
        time.mktime(time.strptime(link["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    )
    assert started + 119 <= expires <= time.time() + 121
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(link["url"]) as response:
            assert (response.status, await response.read()) == (200, content)
        async with anonymous.get(link["url"], headers={"Range": "bytes=-100"}) as response:
            assert (response.status, await response.read()) == (206, content[-100:])


async def test_head_of_a_link_answers_its_headers_only(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"headed", name="h.txt", content_type="text/plain")
    link = await _link(client, gateway, made)
    async with aiohttp.ClientSession() as anonymous, anonymous.head(link["url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "6"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="h.txt"')
        assert await response.read() == b""


async def test_a_link_beyond_the_maximum_is_cut_to_it(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"short lived")
    before = time.time()
    link = await _link(client, gateway, made, {"timeToLive": 86_400_000})
    expires = int(link["url"].split("expires=")[1].split("&")[0])
    assert before + 599 <= expires <= time.time() + 601  # --document-link-max-seconds 600


async def test_curl_resumes_a_cut_download_through_a_link(
    client: aiohttp.ClientSession, gateway: processes.Gateway, tmp_path: Path
) -> None:
    content = _content(SIZE, seed=9)
    _, made = await _created(client, gateway, content)
    link = await _link(client, gateway, made)
    saved = tmp_path / "saved.bin"
    saved.write_bytes(content[:777_777])  # what a cut download left
    curl = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--fail", "-C", "-", "-o", str(saved), link["url"]
    )
    assert await asyncio.wait_for(curl.wait(), 60) == 0
    assert saved.read_bytes() == content


async def test_an_altered_or_foreign_link_is_refused(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"first")
    _, other = await _created(client, gateway, b"second")
    link = (await _link(client, gateway, made))["url"]
    foreign = link.replace(made["documentId"], other["documentId"])
    longer = link.replace("expires=", "expires=1")
    inline = link.replace("disposition=attachment", "disposition=inline")
    async with aiohttp.ClientSession() as anonymous:
        for altered in (foreign, longer, inline, link + "&x=1", link[:-1]):
            async with anonymous.get(altered) as response:
                answer = json.loads(await response.read())
                assert (response.status, answer["type"]) == (403, "LinkRefusedException"), altered


async def test_an_expired_link_is_refused(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"soon gone")
    link = (await _link(client, gateway, made, {"timeToLive": 1}))["url"]
    expires = int(link.split("expires=")[1].split("&")[0])
    assert expires <= time.time() + 1
    async with aiohttp.ClientSession() as anonymous:
        deadline = time.monotonic() + EXPIRY_DEADLINE_SECONDS
        while True:
            async with anonymous.get(link) as response:
                answer = json.loads(await response.read()) if response.status != 200 else {}
            if response.status == 403:
                assert answer["message"] == "The link has expired."
                break
            assert time.monotonic() < deadline, "the link was still served"
            await asyncio.sleep(0.2)


async def test_an_expired_document_is_not_served_nor_its_variable(
    client: aiohttp.ClientSession, gateway: processes.Gateway, instance: tuple[str, str]
) -> None:
    instance_id, _ = instance
    signed, made = await _created(client, gateway, b"expiring", metadata={"timeToLive": 1500})
    assert made["metadata"]["expiresAt"] is not None
    url = _variable_url(gateway.base_url, instance_id, "expiring") + "/data"
    async with client.put(url, data=signed, params={"filename": "e.txt"}) as response:
        assert response.status == 204
    deadline = time.monotonic() + EXPIRY_DEADLINE_SECONDS
    while True:
        async with client.get(_document_url(gateway, made)) as response:
            status = response.status
            await response.read()
        if status == 404:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    async with client.get(url) as response:
        answer = json.loads(await response.read())
        assert (response.status, answer["type"]) == (404, "DocumentNotFoundException")


def _metric(gateway: processes.Gateway, sample: str) -> float:
    text = engine_api.get_bytes(gateway.admin_url + "/metrics").decode()
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(sample + " ")]
    return float(values[0]) if values else 0.0


async def test_uploads_reads_links_and_refusals_are_counted_by_operation_and_result(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    samples = {
        "created": ("documents_create", "ok"),
        "read": ("document", "ok"),
        "linked": ("document_link", "ok"),
        "used": ("document_by_link", "ok"),
        "altered": ("document_by_link", "link_altered"),
        "unauthenticated": ("document", "unauthenticated"),
        "wrong_hash": ("document", "not_found"),
    }
    names = {
        key: f'engine_gateway_document_api_calls_total{{operation="{op}",result="{result}"}}'
        for key, (op, result) in samples.items()
    }
    before = {key: _metric(gateway, name) for key, name in names.items()}
    _, made = await _created(client, gateway, b"counted")
    async with client.get(_document_url(gateway, made)) as response:
        await response.read()
    async with client.get(_document_url(gateway, made, "0" * 64)) as response:
        await response.read()
    link = (await _link(client, gateway, made))["url"]
    async with aiohttp.ClientSession() as anonymous:
        for url in (link, link.replace("signature=", "signature=x"), _document_url(gateway, made)):
            async with anonymous.get(url) as response:
                await response.read()
    after = {key: _metric(gateway, name) for key, name in names.items()}
    assert {key: after[key] - before[key] for key in names} == dict.fromkeys(names, 1.0)


@pytest.fixture(scope="module")
def presigning_gateway(
    backend: Backend, engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway | None]:
    """With --document-links store: on S3 only (a file store cannot presign)."""
    if backend.s3 is None:
        yield None
        return
    with store_gateway(
        tmp_path_factory.mktemp("presigning"),
        engine_process.base_url,
        "--document-links",
        "store",
        backend=backend,
        key=KEY,
    ) as started:
        yield started


async def test_with_store_links_a_link_is_the_stores_own_url(
    client: aiohttp.ClientSession,
    presigning_gateway: processes.Gateway | None,
    backend: Backend,
    tmp_path: Path,
) -> None:
    if presigning_gateway is None:  # a file store cannot presign: refused at start
        with pytest.raises(ConfigError, match="document_links store needs an S3 document store"):
            Config(
                URL("http://127.0.0.1:8080"),
                document_store=backend.store_id,
                document_key_file="keys",
                document_links="store",
            )
        return
    assert backend.s3 is not None
    content = _content(SIZE, seed=13)
    _, made = await _created(client, presigning_gateway, content)
    link = await _link(client, presigning_gateway, made, {"timeToLive": 60_000})
    assert link["url"].startswith(f"{backend.s3.url}/{backend.bucket}/")
    assert "X-Amz-Signature=" in link["url"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(link["url"]) as response:
        assert (response.status, await response.read()) == (200, content)


# --- refusals leave nothing -------------------------------------------------------------------


async def test_a_client_leaving_mid_upload_leaves_nothing_in_the_store(
    gateway: processes.Gateway, backend: Backend
) -> None:
    before = backend.objects()
    port = int(gateway.base_url.rsplit(":", 1)[1])
    form = engine_api.document_form(b"\0" * (40 << 20), 40 << 20, "cut.bin", "text/plain")
    head = (
        f"POST /documents HTTP/1.1\r\nHost: gateway\r\nAuthorization: {engine_api.AUTHORIZATION}"
        f"\r\nContent-Type: {form.content_type}\r\nContent-Length: {form.length}\r\n\r\n"
    )
    with socket.create_connection((processes.LOOPBACK, port)) as sock:
        sock.sendall(head.encode() + form.parts[0][0])
        for _ in range(20):  # 20 MiB of 40, then gone
            sock.sendall(b"\0" * (1 << 20))

    def settled() -> bool:
        return backend.objects() == before and not backend.open_uploads()

    await asyncio.to_thread(
        processes.wait_until, settled, timeout_seconds=30, what="the store as it was"
    )


async def _refused_leaving_nothing(
    client: aiohttp.ClientSession,
    backend: Backend,
    url: str,
    form: aiohttp.FormData,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    before = backend.objects()
    async with client.post(url, data=form, headers=headers) as response:
        answer = json.loads(await response.read())
    assert set(answer) == {"type", "message", "code"}
    assert backend.objects() == before
    assert backend.open_uploads() == []
    return response.status, answer["type"]


async def test_a_wrong_content_digest_is_400_and_leaves_nothing(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    form = _form([("file", _content(SIZE, seed=14), "x.bin", "application/octet-stream")])
    wrong = {"Content-Digest": "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":"}
    refused = await _refused_leaving_nothing(
        client, backend, f"{gateway.base_url}/documents", form, wrong
    )
    assert refused == (400, "DigestMismatchException")


@pytest.mark.parametrize(
    ("metadata", "part"),
    [
        ({"timeToLive": 1000, "expiresAt": "2099-01-01T00:00:00Z"}, "file"),  # both
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "file"),  # passed
        ({"expiresAt": "tomorrow"}, "file"),
        ({"timeToLive": -5}, "file"),
        ({"customProperties": {"big": "x" * 2000}}, "file"),  # a reference is at most 1 KiB
        ({}, "upload"),  # a part the API does not read
        ({"timeToLive": 300_000_000_000_000}, "file"),  # beyond a date's range
        ({"expiresAt": "9999-12-31T23:30:00-01:00"}, "file"),  # so is this, in UTC
        ("[" * 20_000, "file"),  # nested beyond Python's stack
        ({"contentType": "text/plain\u0001"}, "file"),  # it would be a header of every read
    ],
)
async def test_invalid_metadata_or_parts_are_400_and_leave_nothing(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    backend: Backend,
    metadata: dict[str, Any] | str,
    part: str,
) -> None:
    form = _form([(part, _content(SIZE, seed=15), "x.bin", "text/plain")], ("metadata", metadata))
    refused = await _refused_leaving_nothing(client, backend, f"{gateway.base_url}/documents", form)
    assert refused == (400, "InvalidRequestException")


async def test_a_declared_body_over_the_limit_is_413_before_it_is_read(
    gateway: processes.Gateway,
) -> None:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    head = (
        f"POST /documents HTTP/1.1\r\nHost: gateway\r\nAuthorization: {engine_api.AUTHORIZATION}"
        "\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {2 << 30}\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(processes.LOOPBACK, port)
    writer.write(head.encode())
    head_answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = int(head_answer.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    writer.close()
    assert head_answer.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body)["type"] == "PayloadTooLargeException"


async def test_an_existing_document_id_is_409_and_another_store_400(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    _, made = await _created(client, gateway, b"first")
    url = f"{gateway.base_url}/documents?documentId={made['documentId']}"
    form = _form([("file", b"second", "x.txt", "text/plain")])
    assert await _refused_leaving_nothing(client, backend, url, form) == (
        409,
        "DocumentAlreadyExistsException",
    )
    url = f"{gateway.base_url}/documents?storeId=s3://elsewhere"
    form = _form([("file", b"second", "x.txt", "text/plain")])
    assert await _refused_leaving_nothing(client, backend, url, form) == (
        400,
        "InvalidRequestException",
    )
    chosen = "0b1f5c4e-6a2d-4f7e-9c3b-8d5e2f1a0c9b"
    _, made = await _created(client, gateway, b"mine", document_id=chosen)
    assert made["documentId"] == chosen


async def test_an_offloaded_variables_document_is_not_deleted_through_the_api(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = _content(SIZE, seed=16)  # over the 1 MiB threshold: offloaded
    url = _variable_url(gateway.base_url, instance_id, "offloaded") + "/data"
    async with client.put(url, data=content, params={"filename": "o.bin"}) as response:
        assert response.status == 204
    kept = engine_api.get_bytes(url.replace(gateway.base_url, engine_process.base_url))
    found = reference.decode(kept, [KEY.encode()])
    assert isinstance(found, reference.Reference)
    made = {"documentId": found.document_id, "contentHash": found.content_hash}
    async with client.delete(_document_url(gateway, made)) as response:
        answer = json.loads(await response.read())
        assert (response.status, answer["type"]) == (409, "DocumentInUseException")
    async with client.get(url) as response:
        assert (response.status, await response.read()) == (200, content)


async def test_odd_ids_and_hashes_are_404_and_odd_methods_405(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"named")
    for path in (
        f"/documents/{made['documentId']}?contentHash=%C3%A9",
        f"/documents/{made['documentId']}?contentHash=%FF",
        f"/documents/{made['documentId'].upper()}?contentHash={made['contentHash']}",
        f"/documents/x?contentHash={made['contentHash']}",
    ):
        async with client.get(gateway.base_url + path) as response:
            answer = json.loads(await response.read())
            assert (response.status, answer["type"]) == (404, "DocumentNotFoundException"), path
    for method, path, allowed in (
        ("PUT", "/documents", "POST"),
        ("DELETE", "/documents", "POST"),
        ("PUT", f"/documents/{made['documentId']}/links", "POST"),
        ("PATCH", f"/documents/{made['documentId']}", "DELETE, GET, HEAD"),
    ):
        async with client.request(method, gateway.base_url + path) as response:
            answer = json.loads(await response.read())
            assert (response.status, answer["type"]) == (405, "MethodNotAllowedException")
            assert response.headers["Allow"] == allowed, (method, path)


async def test_a_post_from_another_sites_page_is_refused(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    form = _form([("file", b"forced", "f.txt", "text/plain")])
    refused = await _refused_leaving_nothing(
        client,
        backend,
        f"{gateway.base_url}/documents",
        form,
        {"Origin": "https://elsewhere.example"},
    )
    assert refused == (403, "CrossOriginRequestException")
    form = _form([("file", b"own", "f.txt", "text/plain")])
    headers = {"Origin": gateway.base_url}  # the gateway's own pages may
    async with client.post(f"{gateway.base_url}/documents", data=form, headers=headers) as got:
        assert got.status == 201


async def test_two_creates_of_one_document_id_at_once_store_one(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    chosen = "7d5c2a1e-3b4f-4e6d-9a8b-1c2d3e4f5a6b"

    async def create(body: bytes) -> int:
        status, _ = await _upload(client, gateway, body, document_id=chosen)
        return status

    statuses = await asyncio.gather(create(_content(SIZE, 21)), create(_content(SIZE, 22)))
    assert sorted(statuses) == [201, 409]


async def test_a_link_request_of_any_size_or_shape(
    client: aiohttp.ClientSession, gateway: processes.Gateway
) -> None:
    _, made = await _created(client, gateway, b"linked")
    url = _document_url(gateway, made).replace("?", "/links?")

    async def pieces() -> AsyncIterator[bytes]:  # chunked, in two pieces
        yield b'{"timeToLive":'
        yield b" 60000}"

    async with client.post(url, data=pieces()) as response:
        assert response.status == 201
        expires = int(json.loads(await response.read())["url"].split("expires=")[1][:10])
        assert 55 <= expires - time.time() <= 61
    async with client.post(url, json={"timeToLive": 10**400}) as response:
        assert response.status == 201  # cut to --document-link-max-seconds
    async with client.post(url, data=b"[" * 20_000) as response:
        assert response.status == 400


async def test_the_same_bytes_uploaded_again_make_their_content_new_again(
    client: aiohttp.ClientSession, gateway: processes.Gateway, backend: Backend
) -> None:
    """So that a sweep running meanwhile keeps it for the new document (store.commit)."""
    content = _content(SIZE, seed=23)
    _, made = await _created(client, gateway, content)
    key = f"{backend.prefix}content/{made['contentHash']}"
    before = backend.modified(key)
    if backend.root is not None:  # on the disk, as if written long ago
        old = time.time() - 7 * 86400
        os.utime(backend.root / key, (old, old))
        before = backend.modified(key)
    else:  # S3 keeps whole seconds: the next one must have begun
        deadline = time.monotonic() + 5
        while time.time() < before.timestamp() + 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    await _created(client, gateway, content)
    assert backend.modified(key) > before
