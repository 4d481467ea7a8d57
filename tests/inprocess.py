"""The STUB UPSTREAM and the gateway, both in the test's own process and event loop, so a
test can hold the stub's body and watch what reached it while a real client or proxy talks
to the gateway. Loaded as a pytest plugin by tests/conftest.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from gateway import app as gateway_app
from gateway.config import Config
from tests.faults import stub_upstream
from tests.processes import LOOPBACK, free_port


@dataclass(frozen=True)
class Stub:
    url: str
    state: stub_upstream.StubState


@dataclass(frozen=True)
class InProcessGateway:
    url: str
    admin_url: str
    servers: gateway_app.Servers


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    state = stub_upstream.StubState()
    runner = web.AppRunner(stub_upstream.build(state), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield Stub(f"http://{LOOPBACK}:{port}", state)
    await runner.cleanup()


async def start_gateway(upstream_url: str, **overrides: Any) -> InProcessGateway:
    """The gateway in this process on free ports; the caller drains it (gateway.app.drain)."""
    config = Config(
        upstream_url=URL(upstream_url),
        host=LOOPBACK,
        port=free_port(),
        admin_host=LOOPBACK,
        admin_port=free_port(),
        **overrides,
    )
    servers = await gateway_app.start(config)
    return InProcessGateway(
        f"http://{LOOPBACK}:{config.port}", f"http://{LOOPBACK}:{config.admin_port}", servers
    )


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[InProcessGateway]]


@pytest.fixture
def gateway_for() -> GatewayFactory:
    """The gateway in this process, in front of `upstream_url`, with Config overrides."""

    @contextlib.asynccontextmanager
    async def start(upstream_url: str, **overrides: Any) -> AsyncIterator[InProcessGateway]:
        started = await start_gateway(upstream_url, **overrides)
        try:
            yield started
        finally:
            await gateway_app.drain(started.servers)

    return start
