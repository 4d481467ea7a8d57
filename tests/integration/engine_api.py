"""Test set-up calls made directly against the engine (not through the gateway), and a
hand-written multipart form, independent of the gateway's own code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.processes import ADMIN_USER, ROOT

BPMN = ROOT / "deploy" / "engine" / "process" / "user-task.bpmn"
PROCESS_KEY = "gatewayTest"
# What the `previous` fixture (conftest.py) stores before a test tries to replace it.
PREVIOUS = b"previous value"
AUTHORIZATION = "Basic " + base64.b64encode(":".join(ADMIN_USER).encode()).decode()


def call(
    base_url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback test engine
        base_url + "/engine-rest" + path, data=body, method=method
    )
    request.add_header("Authorization", AUTHORIZATION)
    if body is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        raw = response.read()
    return json.loads(raw) if raw else None


@dataclass(frozen=True)
class Form:
    """A multipart/form-data body streamed from parts, with its exact length."""

    boundary: str
    parts: tuple[tuple[bytes, Iterator[bytes] | bytes, int], ...]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _closing(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def length(self) -> int:
        return sum(len(head) + size for head, _, size in self.parts) + len(self._closing())

    def small_body(self) -> bytes:
        """The whole body, for forms whose parts are all bytes already."""
        body = b""
        for head, content, _ in self.parts:
            assert isinstance(content, bytes)
            body += head + content
        return body + self._closing()

    async def stream(self) -> AsyncIterator[bytes]:
        for head, content, _ in self.parts:
            yield head
            if isinstance(content, bytes):
                yield content
            else:
                for chunk in content:
                    yield chunk
        yield self._closing()


@dataclass
class HeldUpload:
    """A form streamed until `hold_after_bytes` have gone, then held until `resume`: `held`
    is set then (or at the end, if it never holds), `sent_all` once the last byte is out."""

    form: Form
    hold_after_bytes: int
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    sent_all: asyncio.Event = field(default_factory=asyncio.Event)

    async def body(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.form.stream():
            yield chunk
            sent += len(chunk)
            if sent >= self.hold_after_bytes and not self.resume.is_set():
                self.held.set()
                await self.resume.wait()
        self.held.set()
        self.sent_all.set()


async def post_form(
    client: aiohttp.ClientSession,
    url: str,
    form: Form,
    body: AsyncIterator[bytes] | None = None,
) -> tuple[int, str]:
    """POSTs `form` streamed, with its exact length (or `body`, a stream of the same form);
    returns the status and the answer's text."""
    async with client.post(
        url,
        data=form.stream() if body is None else body,
        headers={"Content-Type": form.content_type, "Content-Length": str(form.length)},
    ) as response:
        return response.status, await response.text()


async def stored_value(
    client: aiohttp.ClientSession, engine_url: str, instance_id: str, name: str = "doc"
) -> bytes:
    """The process instance's variable `name`, read from the engine directly."""
    url = f"{engine_url}/engine-rest/process-instance/{instance_id}/variables/{name}/data"
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.read()


def part_head(boundary: str, first: bool, disposition: str, content_type: str) -> bytes:
    lead = "" if first else "\r\n"
    return (
        f"{lead}--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def variable_form(
    content: Iterator[bytes] | bytes,
    size: int,
    *,
    value_type: str,
    filename: str | None = None,
    mimetype: str = "application/octet-stream",
) -> Form:
    boundary = "----gatewaytest" + uuid.uuid4().hex
    disposition = 'form-data; name="data"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    data_head = part_head(boundary, True, disposition, mimetype)
    type_head = part_head(boundary, False, 'form-data; name="valueType"', "text/plain")
    return Form(
        boundary,
        ((data_head, content, size), (type_head, value_type.encode(), len(value_type))),
    )


def document_form(
    content: Iterator[bytes] | bytes, size: int, filename: str, mimetype: str
) -> Form:
    """The documents API's upload: one `file` part."""
    boundary = "----gatewaydocument" + uuid.uuid4().hex
    disposition = f'form-data; name="file"; filename="{filename}"'
    return Form(boundary, ((part_head(boundary, True, disposition, mimetype), content, size),))


def deploy_form(*resources: Path) -> Form:
    """A deployment of `resources` (the test process if none), each in a part of its own
    name: the engine keeps only the last of parts with the same name."""
    boundary = "----gatewaydeploy" + uuid.uuid4().hex
    name_head = part_head(boundary, True, 'form-data; name="deployment-name"', "text/plain")
    name = b"gateway-test"
    parts: list[tuple[bytes, Iterator[bytes] | bytes, int]] = [(name_head, name, len(name))]
    for index, resource in enumerate(resources or (BPMN,)):
        content = resource.read_bytes()
        field = "data" if index == 0 else f"data{index}"
        disposition = f'form-data; name="{field}"; filename="{resource.name}"'
        parts.append(
            (part_head(boundary, False, disposition, "application/xml"), content, len(content))
        )
    return Form(boundary, tuple(parts))


def put_file(
    base_url: str,
    instance_id: str,
    variable: str,
    content: bytes,
    filename: str,
    mimetype: str = "application/octet-stream",
) -> str:
    """A File variable of the instance, set at `base_url` as JSON; its variable instance id
    (what Cockpit's download link names)."""
    body = {
        "type": "File",
        "value": base64.b64encode(content).decode(),
        "valueInfo": {"filename": filename, "mimeType": mimetype},
    }
    path = f"/process-instance/{instance_id}/variables/{variable}"
    call(base_url, "PUT", path, json.dumps(body).encode())
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName={variable}"
    found: list[dict[str, str]] = call(base_url, "GET", query)
    return found[0]["id"]


def get_bytes(url: str) -> bytes:
    """A GET's body, with the engine's admin credentials."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback test engine
    request.add_header("Authorization", AUTHORIZATION)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        body: bytes = response.read()
    return body


def deploy(base_url: str) -> dict[str, object]:
    """The test process deployed at `base_url` (multipart POST /deployment/create)."""
    form = deploy_form()
    deployed: dict[str, object] = call(
        base_url, "POST", "/deployment/create", form.small_body(), content_type=form.content_type
    )
    return deployed


def pseudo_random_chunks(size: int, seed: int, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    generator = random.Random(seed)
    remaining = size
    while remaining > 0:
        chunk = generator.randbytes(min(chunk_bytes, remaining))
        remaining -= len(chunk)
        yield chunk


def pseudo_random_sha256(size: int, seed: int) -> str:
    digest = hashlib.sha256()
    for chunk in pseudo_random_chunks(size, seed):
        digest.update(chunk)
    return digest.hexdigest()


def start_instance(base_url: str) -> tuple[str, str]:
    """A new instance of the test process: (process instance id, its user task's id)."""
    instance = call(base_url, "POST", f"/process-definition/key/{PROCESS_KEY}/start", b"{}")
    tasks = call(base_url, "GET", f"/task?processInstanceId={instance['id']}")
    return instance["id"], tasks[0]["id"]
