"""A real browser (headless Chromium, driven over the DevTools protocol) downloads File
variables from the real engine through the gateway and saves them under the right names;
straight from the engine, the same browser loses the names Tomcat cannot send."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import processes
from tests.e2e.browser import Chromium
from tests.integration import engine_api

# stored file name → the name Chromium 156 saves it under, through the gateway.
SAVED_AS = {
    "Отчёт 2026 ✓.pdf": "Отчёт 2026 ✓.pdf",
    "naïve café.txt": "naïve café.txt",
    "日本語の資料.xlsx": "日本語の資料.xlsx",
    "emoji 🎉.png": "emoji 🎉.png",
    'say "hi".txt': "say _hi_.txt",  # the browser's own rule: no quotes in saved names
    "../../etc/passwd": "passwd",
    "CON.txt": "_CON.txt",
    "line\nbreak.txt": "linebreak.txt",
}


def _content(name: str) -> bytes:
    # Every byte value, so any charset or text-mode mangling on the way would show.
    return name.encode() + b"\0" + bytes(range(256))


def _listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture(scope="module")
def downloads(
    deployment: dict[str, object],
    engine_process: processes.Running,
    gateway_process: processes.Gateway,
) -> dict[str, str]:
    """File variables, one per name, stored through the gateway: name → download path."""
    instance_id, _ = engine_api.start_instance(engine_process.base_url)
    paths = {}
    for index, name in enumerate(SAVED_AS):
        engine_api.put_file(
            gateway_process.base_url, instance_id, f"file{index}", _content(name), name
        )
        paths[name] = f"/engine-rest/process-instance/{instance_id}/variables/file{index}/data"
    return paths


@pytest.mark.parametrize("name", SAVED_AS)
async def test_chromium_saves_gateway_downloads_under_their_names(
    name: str,
    downloads: dict[str, str],
    chromium: Chromium,
    gateway_process: processes.Gateway,
    tmp_path: Path,
) -> None:
    saved = await chromium.download(
        gateway_process.base_url + downloads[name],
        tmp_path,
        {"Authorization": engine_api.AUTHORIZATION},
    )
    assert saved.path.name == SAVED_AS[name]
    assert _listing(tmp_path) == [SAVED_AS[name]]
    assert saved.path.read_bytes() == _content(name)


async def test_straight_from_the_engine_chromium_loses_the_name(
    downloads: dict[str, str],
    chromium: Chromium,
    engine_process: processes.Running,
    tmp_path: Path,
) -> None:
    name = "Отчёт 2026 ✓.pdf"
    saved = await chromium.download(
        engine_process.base_url + downloads[name],
        tmp_path,
        {"Authorization": engine_api.AUTHORIZATION},
    )
    # No Content-Disposition at all: the browser names the file after the URL.
    assert saved.path.name == "data"
    assert saved.path.read_bytes() == _content(name)
