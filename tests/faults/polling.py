"""Waiting for a condition with a deadline, inside an event loop (never a bare sleep)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable

import aiohttp

POLL_SECONDS = 0.05


async def poll_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_seconds: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


async def http_status(client: aiohttp.ClientSession, url: str) -> int | None:
    """Status of a GET, or None when nothing accepts the connection."""
    try:
        async with client.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def exit_status(process: subprocess.Popen[bytes], *, timeout_seconds: float) -> int:
    """The process's exit status, once it has exited."""

    async def exited() -> bool:
        return process.poll() is not None

    await poll_until(exited, timeout_seconds=timeout_seconds, what="process exit")
    return process.wait()
