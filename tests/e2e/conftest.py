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
    # `make test` installs Debian's chromium; without it this fails rather than skips.
    assert browser.CHROMIUM.exists(), f"{browser.CHROMIUM} is not installed: run `make test`"
    with browser.launch() as started:
        yield started
