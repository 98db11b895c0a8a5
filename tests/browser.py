"""A real headless browser for tests: Debian's Chromium driven by Playwright (no browser download).

``.ci/run`` installs the chromium package; elsewhere set CHROMIUM_PATH or install it. Tests using the ``page``
fixture skip only when no Chromium is found, and CI always has one."""

import os
import shutil

import pytest


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(monkeypatch):
    path = chromium_path()
    if not path:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
