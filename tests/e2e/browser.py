"""A real headless Chromium, driven over the DevTools protocol, to see downloads as saved.

The process is started synchronously so that a session fixture can own it while each test
talks to it from its own event loop over a fresh websocket. Every download runs in a new
browser context: no cookies, cache or download settings leak from one test to the next.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.processes import LOOPBACK, stop, wait_until

CHROMIUM = Path("/usr/bin/chromium")
POLL_SECONDS = 0.05

Json = dict[str, Any]


class CDPError(RuntimeError):
    """A command was answered with an error, or the connection ended first."""


@dataclass(frozen=True)
class Event:
    method: str
    params: Json
    session_id: str | None


@dataclass(frozen=True)
class Download:
    path: Path  # the file as Chromium saved it
    suggested_filename: str  # from `Browser.downloadWillBegin`


class CDPClient:
    """One browser-level websocket; page targets are reached as flat sessions on it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._arrived = asyncio.Condition()
        self._closed: Exception | None = None
        self.events: list[Event] = []  # every event so far: a waiter never misses an early one
        self._reader = asyncio.create_task(self._read())

    async def send(
        self, method: str, params: Json | None = None, *, session_id: str | None = None
    ) -> Json:
        if self._closed is not None:
            raise CDPError(f"{method}: connection closed") from self._closed
        message_id = next(self._ids)
        message: Json = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await self._ws.send_json(message)
            return await future
        finally:
            del self._pending[message_id]

    async def wait_for(
        self,
        method: str,
        match: Callable[[Json], bool] = lambda _: True,
        *,
        timeout_seconds: float,
        after: int = 0,
    ) -> Event:
        """The first `method` event matching, among those from the `after`-th on."""

        def found() -> Event | None:
            if self._closed is not None:
                raise CDPError(f"connection closed while waiting for {method}") from self._closed
            return next(
                (e for e in self.events[after:] if e.method == method and match(e.params)), None
            )

        try:
            async with self._arrived, asyncio.timeout(timeout_seconds):
                event = await self._arrived.wait_for(found)
        except TimeoutError as error:
            raise TimeoutError(f"no {method} within {timeout_seconds:.1f} s") from error
        assert event is not None
        return event

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    await self._dispatch(json.loads(message.data))
            reason: Exception = CDPError("the browser closed the websocket")
        except (aiohttp.ClientError, ValueError) as error:
            reason = error
        self._closed = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CDPError("connection closed before the answer"))
        async with self._arrived:
            self._arrived.notify_all()

    async def _dispatch(self, data: Json) -> None:
        if "id" not in data:
            self.events.append(Event(data["method"], data.get("params", {}), data.get("sessionId")))
            async with self._arrived:
                self._arrived.notify_all()
            return
        future = self._pending.get(data["id"])
        if future is None or future.done():
            return
        if "error" in data:
            future.set_exception(CDPError(f"{data['error'].get('message')}: {data['error']}"))
        else:
            future.set_result(data.get("result", {}))


@dataclass(frozen=True)
class Chromium:
    process: subprocess.Popen[bytes]
    user_data_dir: Path
    ws_url: str

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[CDPClient]:
        # Unlimited message size: CDP answers (DOM, screenshots) easily exceed aiohttp's 4 MiB.
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.ws_url, max_msg_size=0) as ws,
        ):
            client = CDPClient(ws)
            try:
                yield client
            finally:
                await client.close()

    async def download(
        self, url: str, download_dir: Path, headers: dict[str, str], timeout_seconds: float = 30.0
    ) -> Download:
        async with self.connect() as cdp:
            return await download(cdp, url, download_dir, headers, timeout_seconds)


async def download(
    cdp: CDPClient, url: str, download_dir: Path, headers: dict[str, str], timeout_seconds: float
) -> Download:
    """Navigate a new tab to `url` (sending `headers`) and wait for the file on disk."""
    async with page(cdp, download_dir) as tab:
        await tab.send_headers(headers)
        return await tab.download(lambda: tab.goto(url), timeout_seconds)


class Page:
    """One tab in a browser context of its own (cookies and downloads its own too), for
    going through a web application as a person does: navigate, type, click, wait for what
    the page shows, take the file it starts downloading."""

    def __init__(self, cdp: CDPClient, session: str, target_id: str, directory: Path) -> None:
        self._cdp = cdp
        self._session = session
        self._target_id = target_id
        self._directory = directory

    async def send_headers(self, headers: dict[str, str]) -> None:
        """Headers sent with every request from here on."""
        await self._cdp.send(
            "Network.setExtraHTTPHeaders", {"headers": headers}, session_id=self._session
        )

    async def goto(self, url: str) -> None:
        await self._cdp.send("Page.navigate", {"url": url}, session_id=self._session)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        answer = await self._cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session_id=self._session,
        )
        if "exceptionDetails" in answer:
            raise CDPError(f"{expression}: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    async def wait_until(self, expression: str, what: str, timeout_seconds: float = 30.0) -> Any:
        """Polls `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_seconds
        while not (value := await self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
            await asyncio.sleep(POLL_SECONDS)
        return value

    async def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type, as a keyboard would (the page's own listeners see it)."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self._cdp.send("Input.insertText", {"text": text}, session_id=self._session)

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def download(self, start: Callable[[], Any], timeout_seconds: float = 30.0) -> Download:
        """The file the page downloads after `start` (a click, a navigation), on disk.

        Downloads are allowed (`allow`), not named by GUID (`allowAndName`): the point is
        the name Chromium itself derives from `Content-Disposition`.
        """
        deadline = time.monotonic() + timeout_seconds
        seen = len(self._cdp.events)
        await start()

        def for_this_page(params: Json) -> bool:
            return params.get("frameId") == self._target_id  # a main frame's id is its target's

        try:
            begun = await self._cdp.wait_for(
                "Browser.downloadWillBegin",
                for_this_page,
                timeout_seconds=max(deadline - time.monotonic(), 0.0),
                after=seen,
            )
        except TimeoutError as error:
            raise TimeoutError(
                f"no download began: {_responses(self._cdp, self._session)}"
            ) from error
        ended = await self._cdp.wait_for(
            "Browser.downloadProgress",
            lambda p: p["guid"] == begun.params["guid"] and p["state"] != "inProgress",
            timeout_seconds=max(deadline - time.monotonic(), 0.0),
        )
        if ended.params["state"] != "completed":
            raise CDPError(f"download ended {ended.params['state']}: {ended.params}")
        suggested = str(begun.params["suggestedFilename"])
        path = Path(ended.params.get("filePath") or self._directory / suggested)
        await _poll(
            lambda: path.is_file() and not any(self._directory.glob("*.crdownload")),
            deadline,
            f"{path} on disk without a .crdownload beside it",
        )
        return Download(path, suggested)

    async def screenshot(self, path: Path) -> None:
        shot = await self._cdp.send(
            "Page.captureScreenshot", {"format": "png"}, session_id=self._session
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def page(
    cdp: CDPClient, download_dir: Path, width: int = 1400, height: int = 900
) -> AsyncIterator[Page]:
    """A fresh tab in a fresh browser context, saving downloads into `download_dir`."""
    directory = await asyncio.to_thread(_prepare, download_dir)
    context = (await cdp.send("Target.createBrowserContext"))["browserContextId"]
    try:
        await cdp.send(
            "Browser.setDownloadBehavior",
            {
                "behavior": "allow",
                "browserContextId": context,
                "downloadPath": str(directory),
                "eventsEnabled": True,
            },
        )
        target = await cdp.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context}
        )
        attached = await cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            await cdp.send(f"{domain}.enable", session_id=session)
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session_id=session,
        )
        yield Page(cdp, session, target["targetId"], directory)
    finally:
        await cdp.send("Target.disposeBrowserContext", {"browserContextId": context})


def _prepare(download_dir: Path) -> Path:
    download_dir.mkdir(parents=True, exist_ok=True)
    return download_dir.resolve()


def _responses(cdp: CDPClient, session: str) -> list[tuple[str, int]]:
    return [
        (e.params["response"]["url"], e.params["response"]["status"])
        for e in cdp.events
        if e.method == "Network.responseReceived" and e.session_id == session
    ]


async def _poll(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


@contextlib.contextmanager
def launch(executable: Path = CHROMIUM, *, timeout_seconds: float = 30.0) -> Iterator[Chromium]:
    """Chromium on a free loopback port, with a throw-away profile; stopped by its pid."""
    root = Path(tempfile.mkdtemp(prefix="e2e-chromium-"))
    profile, log_path = root / "profile", root / "chromium.log"
    arguments = [
        str(executable),
        "--headless=new",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # the sandbox refuses to run as root
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",  # Chromium picks the port and writes it to the profile
        f"--remote-debugging-address={LOOPBACK}",
        "about:blank",
    ]
    # Crash reports and caches go under XDG_*, i.e. into the user's home unless redirected.
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "config"), "XDG_CACHE_HOME": str(root)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            arguments, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    port_file = profile / "DevToolsActivePort"

    def announced() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited early:\n{log_path.read_text(errors='replace')}")
        # The file may be seen half-written: wait for both lines.
        lines = port_file.read_text().splitlines() if port_file.exists() else []
        return len(lines) >= 2 and lines[1].startswith("/devtools/browser/")

    try:
        wait_until(announced, timeout_seconds=timeout_seconds, what="DevToolsActivePort")
        port, path = port_file.read_text().splitlines()[:2]
        yield Chromium(process, profile, f"ws://{LOOPBACK}:{int(port)}{path}")
    finally:
        stop(process, timeout_seconds=10)
        _reap_helpers(root, timeout_seconds=10)
        shutil.rmtree(root, ignore_errors=True)


def _helpers(root: Path) -> list[int]:
    marker = str(root).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # a process may vanish while we look
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def _reap_helpers(root: Path, timeout_seconds: float) -> None:
    """Wait for the helpers (zygotes, renderers, crashpad) to follow the browser out.

    They outlive it by a moment, reparented to init, and would still be writing into the
    profile while it is removed; each names our temp dir on its command line.
    """
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not _helpers(root), timeout_seconds=timeout_seconds, what="helpers")
    for pid in _helpers(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
