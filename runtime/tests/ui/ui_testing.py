"""Helpers of the UI tests: Debian's headless Chromium for Playwright, aiohttp servers in a thread, screenshots.

Playwright's own browser download does not work here, so Playwright launches Debian's `chromium`
through `executable_path`. Servers run on their own event loop in a thread, because Playwright's
sync API and the test body run on the main thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

from aiohttp import web

CHROMIUM = os.environ.get("MESOLITE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGUMENTS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A laptop screen.
VIEWPORT = {"width": 1366, "height": 800}
# Screenshots for the README are written here when MESOLITE_UI_SCREENSHOTS is set (to docs/images, say).
SCREENSHOT_DIRECTORY = os.environ.get("MESOLITE_UI_SCREENSHOTS")


class ServerThread:
    """An aiohttp application served on 127.0.0.1 from a background thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        # Streams (server-sent events) still open in a handler end here, not with a closed loop.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def save_screenshot(page, name: str, tmp_path: Path, full_page: bool = True) -> Path:
    """Screenshot to the test's directory, and to MESOLITE_UI_SCREENSHOTS (docs/images) when it is set."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if SCREENSHOT_DIRECTORY:
        Path(SCREENSHOT_DIRECTORY).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENSHOT_DIRECTORY) / path.name)
    return path
