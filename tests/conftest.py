"""Session-wide real processes: the engine (built by Maven) and the gateway in front of it.

Started lazily: only tests that ask for them pay the engine's start-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import processes


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
