"""Self-test of the Chromium harness, and what a real browser saves for our headers.

A loopback server sends each body with `content_disposition(name)` and answers 401 without
the Authorization header, so every completed download also proves the header reached it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.disposition import content_disposition
from tests.e2e.browser import Chromium
from tests.processes import LOOPBACK

AUTHORIZATION = "Basic " + base64.b64encode(b"demo:demo").decode()

# Name handed to `content_disposition` → name Chromium 156 saved it under (observed).
SAVED_AS = {
    "Отчёт 2026 ✓.pdf": "Отчёт 2026 ✓.pdf",
    "naïve café.txt": "naïve café.txt",
    "日本語の資料.xlsx": "日本語の資料.xlsx",
    "emoji 🎉.png": "emoji 🎉.png",
    'quote"back\\slash.txt': "slash.txt",
    "../../etc/passwd": "passwd",
    "CON.txt": "_CON.txt",
    "line\nbreak.txt": "linebreak.txt",
}
NAMES = list(SAVED_AS)


def body(name: str) -> bytes:
    # Every byte value, so any text-mode or charset mangling on the way shows up.
    return name.encode() + b"\0" + bytes(range(256))


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@dataclass
class FileServer:
    url: str
    authorizations: list[str | None] = field(default_factory=list)


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer(url="")

    async def serve(request: web.Request) -> web.Response:
        server.authorizations.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != AUTHORIZATION:
            raise web.HTTPUnauthorized()
        name = NAMES[int(request.match_info["index"])]
        return web.Response(
            body=body(name),
            content_type="application/octet-stream",
            headers={"Content-Disposition": content_disposition(name)},
        )

    app = web.Application()
    app.router.add_get("/files/{index}", serve)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    server.url = f"http://{LOOPBACK}:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


@pytest.mark.parametrize("name", NAMES, ids=[ascii(name) for name in NAMES])
async def test_chromium_saves_under_the_disposition_name(
    chromium: Chromium, file_server: FileServer, tmp_path: Path, name: str
) -> None:
    # The URL's last segment is an index, so a name taken from the URL could not pass.
    url = f"{file_server.url}/files/{NAMES.index(name)}"
    saved = await chromium.download(url, tmp_path, {"Authorization": AUTHORIZATION}, 30)
    print(f"\n{name!r} -> {content_disposition(name)} -> {saved.path.name!r}")
    assert file_server.authorizations == [AUTHORIZATION]
    assert saved.path == tmp_path / SAVED_AS[name]
    assert saved.suggested_filename == SAVED_AS[name]
    assert listing(tmp_path) == [SAVED_AS[name]]
    assert saved.path.read_bytes() == body(name)


async def test_a_refused_request_is_reported_not_waited_out(
    chromium: Chromium, file_server: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(TimeoutError, match=r"started no download.*, 401\)"):
        await chromium.download(f"{file_server.url}/files/0", tmp_path, {}, timeout_seconds=2)
    assert file_server.authorizations == [None]
    assert listing(tmp_path) == []
