from __future__ import annotations

import pytest

from tests import processes
from tests.integration import engine_api


@pytest.fixture
def instance(deployment: dict[str, object], engine_process: processes.Running) -> tuple[str, str]:
    """A fresh process instance of the test process: (instance id, user task id)."""
    return engine_api.start_instance(engine_process.base_url)
