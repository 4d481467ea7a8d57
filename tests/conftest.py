"""Session-wide real processes: the engine (built by Maven) and the gateway in front of it.

Started lazily: only tests that ask for them pay the engine's start-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import processes
from tests.integration import engine_api

# The in-process stub upstream and gateway fixtures, for tests/faults and tests/e2e.
pytest_plugins = ["tests.inprocess"]


@pytest.fixture(scope="session")
def engine_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.Running]:
    with processes.engine(tmp_path_factory.mktemp("engine")) as running:
        yield running


@pytest.fixture(scope="session")
def gateway_process(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    with processes.gateway(tmp_path_factory.mktemp("gateway"), engine_process.base_url) as started:
        yield started


@pytest.fixture(scope="session")
def deployment(gateway_process: processes.Gateway) -> dict[str, object]:
    """The test process, deployed through the gateway (multipart POST /deployment/create)."""
    form = engine_api.deploy_form()
    deployed: dict[str, object] = engine_api.call(
        gateway_process.base_url,
        "POST",
        "/deployment/create",
        form.small_body(),
        content_type=form.content_type,
    )
    return deployed
