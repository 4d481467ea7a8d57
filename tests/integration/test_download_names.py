"""Download names, against the real engine: File variables whose names break naive headers,
stored through the gateway, downloaded through it by every kind of route, compared with
what the engine sends itself; Bytes variables, attachments and deployment resources, which
the engine sends without a usable name; the inline/attachment policy."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api

# stored file name → what the gateway sends, written out by hand from RFC 6266/8187.
NAMES = {
    "Отчёт 2026 ✓.pdf": "attachment; filename=\"_____ 2026 _.pdf\"; filename*=UTF-8''"
    "%D0%9E%D1%82%D1%87%D1%91%D1%82%202026%20%E2%9C%93.pdf",
    "naïve café.txt": "attachment; filename=\"naive cafe.txt\"; filename*=UTF-8''"
    "na%C3%AFve%20caf%C3%A9.txt",
    "日本語の資料.xlsx": "attachment; filename=\"______.xlsx\"; filename*=UTF-8''"
    "%E6%97%A5%E6%9C%AC%E8%AA%9E%E3%81%AE%E8%B3%87%E6%96%99.xlsx",
    "emoji 🎉.png": "attachment; filename=\"emoji _.png\"; filename*=UTF-8''"
    "emoji%20%F0%9F%8E%89.png",
    # A backslash is a path separator on Windows: only the last part is a name.
    'quote"back\\slash.txt': 'attachment; filename="slash.txt"',
    'say "hi".txt': "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
    "../../etc/passwd": 'attachment; filename="passwd"',
    "a;b=c,d.txt": 'attachment; filename="a;b=c,d.txt"',
    "CON.txt": 'attachment; filename="_CON.txt"',
    "x" * 296 + ".txt": f'attachment; filename="{"x" * 251}.txt"',
    "line\nbreak.txt": 'attachment; filename="linebreak.txt"',
    "plain.txt": 'attachment; filename="plain.txt"',
}
# Tomcat drops the engine's whole Content-Disposition for names beyond Latin-1.
DROPPED_BY_THE_ENGINE = {"Отчёт 2026 ✓.pdf", "日本語の資料.xlsx", "emoji 🎉.png"}
CONTENT = b"%PDF-1.4 not really\n"


@dataclass(frozen=True)
class Stored:
    instance_id: str
    task_id: str
    variables: dict[str, str]  # file name → variable name
    history_ids: dict[str, str]  # variable name → historic variable instance id


def _put_file(base_url: str, scope: str, variable: str, filename: str, mimetype: str) -> None:
    body = {
        "type": "File",
        "value": base64.b64encode(CONTENT).decode(),
        "valueInfo": {"filename": filename, "mimeType": mimetype},
    }
    path = f"/{scope}/variables/{quote(variable, safe='')}"
    engine_api.call(base_url, "PUT", path, json.dumps(body).encode())


@pytest.fixture(scope="module")
def stored(
    deployment: dict[str, object],
    engine_process: processes.Running,
    gateway_process: processes.Gateway,
) -> Stored:
    """One instance holding a File variable per name, each stored through the gateway."""
    instance_id, task_id = engine_api.start_instance(engine_process.base_url)
    variables = {name: f"file{index}" for index, name in enumerate(NAMES)}
    for name, variable in variables.items():
        scope = f"process-instance/{instance_id}"
        _put_file(gateway_process.base_url, scope, variable, name, "application/pdf")
    history = engine_api.call(
        engine_process.base_url,
        "GET",
        f"/history/variable-instance?processInstanceId={instance_id}",
    )
    history_ids = {row["name"]: row["id"] for row in history}
    return Stored(instance_id, task_id, variables, history_ids)


async def _get(client: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        assert await response.read() == CONTENT
        return response


def _routes(stored: Stored, variable: str) -> Iterator[str]:
    """The same variable by three routes, each named by a different lookup: the scope's
    own variable query, a task inheriting from its instance, a historic instance's id."""
    yield f"/engine-rest/process-instance/{stored.instance_id}/variables/{variable}/data"
    yield f"/engine-rest/task/{stored.task_id}/variables/{variable}/data"
    yield f"/engine-rest/history/variable-instance/{stored.history_ids[variable]}/data"


@pytest.mark.parametrize("name", NAMES)
async def test_file_names_are_sent_safely_by_every_route(
    name: str,
    stored: Stored,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    for path in _routes(stored, stored.variables[name]):
        through_gateway = await _get(client, gateway_process.base_url + path)
        assert through_gateway.headers["Content-Disposition"] == NAMES[name], path
        assert through_gateway.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in through_gateway.headers
        assert through_gateway.headers["Content-Type"] == "application/pdf"

        direct = await _get(client, engine_process.base_url + path)
        if name in DROPPED_BY_THE_ENGINE:
            assert "Content-Disposition" not in direct.headers
        else:
            assert direct.headers["Content-Disposition"].startswith("attachment; filename=")


@pytest.fixture(scope="module")
def inline_gateway(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    with processes.gateway(
        tmp_path_factory.mktemp("inline-gateway"),
        engine_process.base_url,
        "--default-disposition",
        "inline",
        "--bytes-filename",
        "none",
    ) as started:
        yield started


def _put_bytes(base_url: str, scope: str, variable: str) -> None:
    body = {"type": "Bytes", "value": base64.b64encode(CONTENT).decode()}
    engine_api.call(base_url, "PUT", f"/{scope}/variables/{variable}", json.dumps(body).encode())


async def test_bytes_variables_are_named_after_the_variable(
    stored: Stored,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    inline_gateway: processes.Gateway,
) -> None:
    _put_bytes(gateway_process.base_url, f"process-instance/{stored.instance_id}", "scan_2026")
    [row] = engine_api.call(
        engine_process.base_url,
        "GET",
        f"/history/variable-instance?processInstanceId={stored.instance_id}&variableName=scan_2026",
    )
    by_scope = f"/engine-rest/process-instance/{stored.instance_id}/variables/scan_2026/data"
    by_id = f"/engine-rest/history/variable-instance/{row['id']}/data"  # name not in the path
    for path in (by_scope, by_id):
        direct = await _get(client, engine_process.base_url + path)
        assert "Content-Disposition" not in direct.headers
        named = await _get(client, gateway_process.base_url + path)
        assert named.headers["Content-Disposition"] == 'attachment; filename="scan_2026"'
        assert named.headers["X-Content-Type-Options"] == "nosniff"
        # --bytes-filename=none: no name; octet-stream is never shown inline.
        unnamed = await _get(client, inline_gateway.base_url + path)
        assert unnamed.headers["Content-Disposition"] == "attachment"


@pytest.mark.parametrize(
    ("mimetype", "requested", "expected"),
    [
        ("application/pdf", None, "attachment"),
        ("application/pdf", "inline", "inline"),
        ("image/png", "inline", "inline"),
        ("text/plain", "inline", "inline"),
        ("text/html", "inline", "attachment"),
        ("image/svg+xml", "inline", "attachment"),
        ("application/xhtml+xml", "inline", "attachment"),
        ("text/xml", "inline", "attachment"),
        ("application/javascript", "inline", "attachment"),
        ("application/octet-stream", "inline", "attachment"),
    ],
)
async def test_inline_only_for_content_that_renders_safely(
    mimetype: str,
    requested: str | None,
    expected: str,
    stored: Stored,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
) -> None:
    variable = "typed_" + uuid.uuid4().hex[:8]
    scope = f"process-instance/{stored.instance_id}"
    _put_file(gateway_process.base_url, scope, variable, "shown.bin", mimetype)
    path = f"/engine-rest/{scope}/variables/{variable}/data"
    query = f"?disposition={requested}" if requested else ""
    response = await _get(client, gateway_process.base_url + path + query)
    assert response.headers["Content-Disposition"] == f'{expected}; filename="shown.bin"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    sandbox = response.headers.get("Content-Security-Policy")
    assert sandbox == ("sandbox" if expected == "inline" else None)


async def test_default_disposition_and_the_per_request_override(
    stored: Stored,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    inline_gateway: processes.Gateway,
) -> None:
    path = (
        f"/engine-rest/process-instance/{stored.instance_id}/variables/"
        f"{stored.variables['plain.txt']}/data"
    )
    inline = await _get(client, inline_gateway.base_url + path)
    assert inline.headers["Content-Disposition"] == 'inline; filename="plain.txt"'
    assert inline.headers["Content-Security-Policy"] == "sandbox"
    overridden = await _get(client, inline_gateway.base_url + path + "?disposition=attachment")
    assert overridden.headers["Content-Disposition"] == 'attachment; filename="plain.txt"'

    async with client.get(gateway_process.base_url + path + "?disposition=open") as response:
        assert response.status == 400
        error = await response.json()
    assert error["type"] == "InvalidRequestException"
    assert "disposition" in error["message"]


async def test_attachments_and_deployment_resources_are_named_from_their_metadata(
    stored: Stored,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    boundary = "----names" + uuid.uuid4().hex
    name_head = engine_api.part_head(
        boundary, True, 'form-data; name="attachment-name"', "text/plain; charset=UTF-8"
    )
    content_head = engine_api.part_head(
        boundary, False, 'form-data; name="content"; filename="x"', "application/pdf"
    )
    name = "Übersicht 📎.pdf".encode()
    form = engine_api.Form(
        boundary, ((name_head, name, len(name)), (content_head, CONTENT, len(CONTENT)))
    )
    attachment = engine_api.call(
        gateway_process.base_url,
        "POST",
        f"/task/{stored.task_id}/attachment/create",
        form.small_body(),
        form.content_type,
    )
    path = f"/engine-rest/task/{stored.task_id}/attachment/{attachment['id']}/data"
    direct = await _get(client, engine_process.base_url + path)
    assert "Content-Disposition" not in direct.headers
    named = await _get(client, gateway_process.base_url + path)
    assert named.headers["Content-Disposition"] == (
        "attachment; filename=\"Ubersicht _.pdf\"; filename*=UTF-8''"
        "%C3%9Cbersicht%20%F0%9F%93%8E.pdf"
    )

    deployed = _deploy_text(gateway_process.base_url, "Прочти меня ✓.txt")
    [row] = engine_api.call(engine_process.base_url, "GET", f"/deployment/{deployed}/resources")
    path = f"/engine-rest/deployment/{deployed}/resources/{row['id']}/data"
    direct = await _get(client, engine_process.base_url + path)
    assert "Content-Disposition" not in direct.headers
    named = await _get(client, gateway_process.base_url + path)
    assert named.headers["Content-Disposition"] == (
        "attachment; filename=\"______ ____ _.txt\"; filename*=UTF-8''"
        "%D0%9F%D1%80%D0%BE%D1%87%D1%82%D0%B8%20%D0%BC%D0%B5%D0%BD%D1%8F%20%E2%9C%93.txt"
    )


def _deploy_text(base_url: str, filename: str) -> str:
    boundary = "----resource" + uuid.uuid4().hex
    name_head = engine_api.part_head(
        boundary, True, 'form-data; name="deployment-name"', "text/plain"
    )
    file_head = engine_api.part_head(
        boundary, False, f'form-data; name="data"; filename="{filename}"', "text/plain"
    )
    form = engine_api.Form(boundary, ((name_head, b"names", 5), (file_head, CONTENT, len(CONTENT))))
    deployed = engine_api.call(
        base_url, "POST", "/deployment/create", form.small_body(), form.content_type
    )
    return str(deployed["id"])
