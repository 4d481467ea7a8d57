from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api


@pytest.fixture
def instance(deployment: dict[str, object], engine_process: processes.Running) -> tuple[str, str]:
    """A fresh process instance of the test process: (instance id, user task id)."""
    return engine_api.start_instance(engine_process.base_url)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": engine_api.AUTHORIZATION}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        headers=headers, auto_decompress=False, timeout=timeout
    ) as session:
        yield session
