"""Fixtures of the browser tests: one Debian chromium per module, a page per test whose
failure names the step and keeps a screenshot in build/browser-failures/ (the path is
printed; CI can upload the folder)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser.kit import CHROMIUM_ARGS, FAILURES, Steps, require_chromium


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: the sync API runs an event loop in this thread while it is open, so it
    # must be closed before the suite's other tests call asyncio.run().
    executable = require_chromium()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def steps() -> Steps:
    return Steps()


@pytest.fixture
def page(browser: Browser, steps: Steps, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, bypass_csp=True
    )  # the demo's CSP forbids eval
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    yield page
    print("\nSTEPS " + request.node.name + "\n" + steps.report())
    if request.node.stash.get(_FAILED, False):
        FAILURES.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{steps.current}")[:150]
        shot = FAILURES / f"{name}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            where = f"screenshot: {shot}"
        except Exception as exc:  # the page may be gone
            where = f"no screenshot ({exc})"
        print(f"\nBROWSER TEST FAILED at step {steps.current!r}; {where}")
        print("steps:\n" + steps.report())
        print("page console (last 30 lines):\n  " + "\n  ".join(console[-30:]))
    context.close()
