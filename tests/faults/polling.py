"""Waiting for a condition with a deadline, inside an event loop (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable

import aiohttp

POLL_SECONDS = 0.05


async def _holds(condition: Callable[[], Awaitable[bool] | bool]) -> bool:
    result = condition()
    return await result if inspect.isawaitable(result) else result


async def poll_until(
    condition: Callable[[], Awaitable[bool] | bool], *, timeout_seconds: float, what: str
) -> None:
    """Until `condition` (a plain or an async function) holds, or TimeoutError."""
    deadline = time.monotonic() + timeout_seconds
    while not await _holds(condition):
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
