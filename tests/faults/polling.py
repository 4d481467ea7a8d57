"""Waiting for a condition with a deadline, inside an event loop (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.05


async def poll_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_seconds: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
