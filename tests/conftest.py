"""Session-wide real processes: the engine (built by Maven) and the gateway in front of it.

Started lazily: only tests that ask for them pay the engine's start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api

# The in-process stub upstream and gateway fixtures, for tests/faults and tests/e2e.
pytest_plugins = ["tests.inprocess"]


@pytest.fixture(scope="session")
def engine_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.Postgres | None]:
    """The engine's database: its H2 file (None), or with DB=postgres a PostgreSQL server."""
    if processes.database_name() == "h2":
        yield None
        return
    with processes.postgres(tmp_path_factory.mktemp("postgres")) as database:
        yield database


@pytest.fixture(scope="session")
def engine_process(
    engine_database: processes.Postgres | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Running]:
    work_dir = tmp_path_factory.mktemp("engine")
    with processes.engine(work_dir, database=engine_database) as running:
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
    return engine_api.deploy(gateway_process.base_url)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with the engine's admin credentials, as real clients send them; bodies as
    they come (no decompression). tests/faults has its own, without credentials."""
    headers = {"Authorization": engine_api.AUTHORIZATION}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        headers=headers, auto_decompress=False, timeout=timeout
    ) as session:
        yield session
