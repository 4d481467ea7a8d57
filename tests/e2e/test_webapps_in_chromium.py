"""Cockpit, Tasklist and Admin in a real browser (headless Chromium over the DevTools
protocol), through the gateway and straight from the engine: a person logs into Cockpit,
opens a process instance and clicks its File variable's Download link.

Through the gateway the file is saved under its own name; straight from the engine, whose
Tomcat drops the whole Content-Disposition of a name beyond Latin-1, the browser falls back
on the name Cockpit's link suggests (its `download` attribute: the variable's name and
"-data"). With SCREENSHOT_DIR set (`make screenshots` sets docs/), the test keeps its
screenshot of Cockpit there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests import processes
from tests.e2e import browser
from tests.integration import engine_api, webapps

NAME = "Отчёт 2026 ✓.pdf"
CONTENT = b"%PDF-1.7 quarterly report\n" + bytes(range(256))
VARIABLE = "report"


@pytest.fixture(scope="module")
def report_instance(deployment: dict[str, object], engine_process: processes.Running) -> str:
    """An instance of the test process with a File variable named beyond Latin-1."""
    instance_id, _ = engine_api.start_instance(engine_process.base_url)
    engine_api.put_file(
        engine_process.base_url, instance_id, VARIABLE, CONTENT, NAME, "application/pdf"
    )
    return instance_id


async def _log_in(page: browser.Page, base_url: str, app: str) -> None:
    """Through the webapp's own login form, typed as a person types."""
    await page.goto(f"{base_url}{webapps.WEBAPP}/app/{app}/default/")
    await page.wait_until("!!document.querySelector('input[ng-model=password]')", "the login form")
    await page.type_into("input[ng-model=username]", processes.ADMIN_USER[0])
    await page.type_into("input[ng-model=password]", processes.ADMIN_USER[1])
    await page.click("button[type=submit]")
    await page.wait_until("!document.querySelector('input[ng-model=password]')", "the login")


DOWNLOAD_LINK = "a[href*='/variable-instance/'][href$='/data']"


async def _open_instance(page: browser.Page, base_url: str, instance_id: str) -> None:
    """Cockpit's page of the instance, its variables tab open, as a person gets there."""
    await _log_in(page, base_url, "cockpit")
    await page.goto(
        f"{base_url}{webapps.WEBAPP}/app/cockpit/default/"
        f"#/process-instance/{instance_id}/runtime?tab=variables-tab"
    )
    await page.wait_until(f"!!document.querySelector({json.dumps(DOWNLOAD_LINK)})", "Download")


async def _download_from_cockpit(
    chromium: browser.Chromium, base_url: str, instance_id: str, directory: Path
) -> browser.Download:
    async with chromium.connect() as cdp, browser.page(cdp, directory) as page:
        await _open_instance(page, base_url, instance_id)
        return await page.download(lambda: page.click(DOWNLOAD_LINK))


async def test_cockpit_through_the_gateway_downloads_the_file_under_its_name(
    chromium: browser.Chromium,
    gateway_process: processes.Gateway,
    report_instance: str,
    tmp_path: Path,
) -> None:
    downloaded = await _download_from_cockpit(
        chromium, gateway_process.base_url, report_instance, tmp_path
    )
    assert downloaded.suggested_filename == NAME
    assert downloaded.path.name == NAME
    assert downloaded.path.read_bytes() == CONTENT


async def test_cockpit_straight_from_the_engine_loses_the_name(
    chromium: browser.Chromium,
    engine_process: processes.Running,
    report_instance: str,
    tmp_path: Path,
) -> None:
    downloaded = await _download_from_cockpit(
        chromium, engine_process.base_url, report_instance, tmp_path
    )
    assert downloaded.path.name == f"{VARIABLE}-data.pdf"  # Cockpit's link, not the file
    assert downloaded.path.read_bytes() == CONTENT


@pytest.mark.parametrize(("app", "brand"), [("tasklist", "Tasklist"), ("admin", "Admin")])
async def test_tasklist_and_admin_load_through_the_gateway(
    app: str,
    brand: str,
    chromium: browser.Chromium,
    gateway_process: processes.Gateway,
    tmp_path: Path,
) -> None:
    async with chromium.connect() as cdp, browser.page(cdp, tmp_path) as page:
        await _log_in(page, gateway_process.base_url, app)
        shown = await page.wait_until(
            "(document.querySelector('.navbar-brand') || {}).textContent", f"{app}'s header"
        )
        assert brand in shown
        await page.wait_until(f"document.title.includes({json.dumps(brand)})", "its title")


async def test_a_screenshot_of_cockpit_through_the_gateway(
    chromium: browser.Chromium,
    gateway_process: processes.Gateway,
    report_instance: str,
    tmp_path: Path,
) -> None:
    """Cockpit's process instance page, diagram and variables, as served through the gateway:
    docs/cockpit.png when SCREENSHOT_DIR=docs."""
    target = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path) / "cockpit.png"
    async with chromium.connect() as cdp, browser.page(cdp, tmp_path) as page:
        await _open_instance(page, gateway_process.base_url, report_instance)
        await page.wait_until("!!document.querySelector('.djs-element')", "the diagram")
        await page.screenshot(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
