"""One headless Chromium for the whole session, started synchronously.

Tests run in their own event loops, so the session owns only the process; each test opens
its own websocket to it (`Chromium.connect` / `Chromium.download`) inside its loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import browser


@pytest.fixture(scope="session")
def chromium() -> Iterator[browser.Chromium]:
    if not browser.CHROMIUM.exists():
        pytest.skip(f"{browser.CHROMIUM} is not installed")
    with browser.launch() as started:
        yield started
