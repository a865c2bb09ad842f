"""Helpers of the browser tests: Debian's chromium under Playwright, test pages served on
the tickwire server's origin, named steps with a screenshot when one fails, and a fault
proxy running in a thread of its own (the Playwright sync API owns the main thread).

Pages: the test navigates to the server's `/healthz` (a real loopback response, so Chrome's
local-network checks see a loopback page) and replaces the document with its own HTML,
which imports `/tickwire.js` from the server like any application page. Extra files
(`/__test/react.js`) are answered by `page.route`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from support.proxy import FaultProxy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
REACT_BUNDLE = ROOT / "js" / "build" / "react.js"
FAILURES = ROOT / "build" / "browser-failures"  # screenshots of failed steps
MISSING_CHROMIUM = (
    f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
    "(`make chromium` installs it with apt-get install -y chromium); they never download a browser"
)


def require_chromium() -> str:
    """The chromium binary, or a loud failure (never a skip)."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        if found is None:
            raise RuntimeError(MISSING_CHROMIUM)
        return found
    return CHROMIUM


class Steps:
    """Names the step a test is in, so a failure says where it was (and its screenshot);
    keeps how long each step took (printed with a failure)."""

    def __init__(self) -> None:
        self.current = "setup"
        self.took: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = name
        began = time.monotonic()
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"step {name!r} failed: {exc}") from exc
        finally:
            self.took.append((name, time.monotonic() - began))

    def report(self) -> str:
        return "\n".join(f"  {seconds:6.2f} s  {name}" for name, seconds in self.took)


def sdk_page(
    page: Page,
    base_url: str,
    script: str,
    *,
    importmap: dict[str, str] | None = None,
    body: str = "",
) -> None:
    """Open a page on `base_url`'s origin that runs the module `script` (it may import /tickwire.js)."""
    page.goto(base_url + "/healthz")
    imports = f'<script type="importmap">{json.dumps({"imports": importmap})}</script>' if importmap else ""
    page.set_content(
        f"<!doctype html><html><head><meta charset=utf-8>{imports}</head>"
        f'<body>{body}<script type="module">{script}</script></body></html>'
    )


def serve_react(page: Page, base_url: str) -> dict[str, str]:
    """Answer `/__test/react.js` with the test bundle of React; the import map for it."""
    if not REACT_BUNDLE.is_file():
        raise RuntimeError(f"{REACT_BUNDLE} is missing: `make js` builds it (node scripts/vendor-react.mjs)")
    code = REACT_BUNDLE.read_text()
    page.route(
        base_url + "/__test/react.js",
        lambda route: route.fulfill(
            body=code, content_type="text/javascript", headers={"Cache-Control": "no-store"}
        ),
    )
    return {"react": "/__test/react.js"}


def wait_until(page: Page, expression: str, timeout_s: float = 15, arg: Any = None) -> Any:
    """Wait for a page expression to be truthy; its value."""
    handle = page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=50)
    return handle.json_value()


class ThreadedProxy:
    """support.proxy.FaultProxy in a thread with its own event loop."""

    def __init__(self, target_port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fault-proxy", daemon=True)
        self.thread.start()
        self.proxy: FaultProxy = self.call(self._start(target_port))

    async def _start(self, port: int) -> FaultProxy:
        proxy = FaultProxy(port)
        await proxy.resume_listening()
        return proxy

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def do(self, fn: Callable[[FaultProxy], Any]) -> Any:
        async def run() -> Any:
            return fn(self.proxy)

        return self.call(run())

    @property
    def url(self) -> str:
        return self.proxy.url

    def close(self) -> None:
        self.call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
