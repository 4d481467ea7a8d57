from __future__ import annotations

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api


@pytest.fixture
def instance(deployment: dict[str, object], engine_process: processes.Running) -> tuple[str, str]:
    """A fresh process instance of the test process: (instance id, user task id)."""
    return engine_api.start_instance(engine_process.base_url)


@pytest.fixture
async def previous(
    client: aiohttp.ClientSession, engine_process: processes.Running, instance: tuple[str, str]
) -> tuple[str, str]:
    """A fresh instance whose task variable `doc` holds engine_api.PREVIOUS as a File, set
    on the engine directly: what a refused upload must leave behind."""
    _, task_id = instance
    value = engine_api.PREVIOUS
    form = engine_api.variable_form(value, len(value), value_type="File", filename="doc.bin")
    url = f"{engine_process.base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text
    return instance
