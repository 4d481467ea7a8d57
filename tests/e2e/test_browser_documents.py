"""A real browser (headless Chromium) follows documents API links, with no credentials:
an attachment link saves the file under its name, an inline link to a PDF opens it in
the browser instead of downloading it. Behind nginx, a link points at nginx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import processes
from tests.e2e.browser import Chromium, page
from tests.integration import engine_api
from tests.integration.documents import store_gateway

NAME = "Bericht März 2026.pdf"
# A one-page PDF: what a browser's viewer opens.
PDF = b"""%PDF-1.4
1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj
trailer<</Root 1 0 R>>
%%EOF
"""


@pytest.fixture(scope="module")
def documents_gateway(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    work = tmp_path_factory.mktemp("browser-documents")
    with store_gateway(work, engine_process.base_url) as started:
        yield started


async def _link(gateway: processes.Gateway, disposition: str) -> str:
    return await _link_through(gateway.base_url, disposition)


async def _link_through(base_url: str, disposition: str) -> str:
    """A link to a new PDF document, asked for at `base_url`."""
    headers = {"Authorization": engine_api.AUTHORIZATION}
    async with aiohttp.ClientSession(headers=headers) as client:
        form = aiohttp.FormData(quote_fields=False)  # the name in UTF-8, as browsers send it
        form.add_field("file", PDF, filename=NAME, content_type="application/pdf")
        async with client.post(f"{base_url}/documents", data=form) as response:
            made: dict[str, Any] = json.loads(await response.read())
        url = f"{base_url}/documents/{made['documentId']}/links?contentHash={made['contentHash']}"
        async with client.post(url, json={"disposition": disposition}) as response:
            assert response.status == 201
            link: str = json.loads(await response.read())["url"]
            return link


async def test_chromium_saves_a_links_document_under_its_name(
    chromium: Chromium, documents_gateway: processes.Gateway, tmp_path: Path
) -> None:
    link = await _link(documents_gateway, "attachment")
    saved = await chromium.download(link, tmp_path, {})
    assert saved.path.name == NAME
    assert saved.path.read_bytes() == PDF


async def test_chromium_opens_a_pdf_inline_where_the_link_asks_for_inline(
    chromium: Chromium, documents_gateway: processes.Gateway, tmp_path: Path
) -> None:
    link = await _link(documents_gateway, "inline")
    async with chromium.connect() as cdp, page(cdp, tmp_path) as tab:
        await tab.goto(link)
        shown = await tab.wait_until(
            "document.readyState === 'complete' && document.contentType", "the PDF shown"
        )
    assert shown == "application/pdf"
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (shown, not downloaded)


async def test_a_link_made_through_nginx_points_at_nginx_and_is_served_there(
    documents_gateway: processes.Gateway, tmp_path: Path
) -> None:
    """Behind the shipped nginx site, the link's origin is the one the caller used (nginx
    passes it in X-Forwarded-Host and X-Forwarded-Proto), not the gateway's own."""
    address = documents_gateway.base_url.removeprefix("http://")
    with processes.nginx(tmp_path, address) as proxy:
        link = await _link_through(proxy.base_url, "attachment")
        assert link.startswith(proxy.base_url + "/documents/")
        async with aiohttp.ClientSession() as anonymous, anonymous.get(link) as response:
            assert (response.status, await response.read()) == (200, PDF)
