"""A real headless browser for tests: Debian's Chromium driven by Playwright (no browser download).

``.ci/run`` installs the chromium package; elsewhere set CHROMIUM_PATH or install it. Tests using the ``page``
fixture skip only when no Chromium is found, and CI always has one."""

import asyncio
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def _chromium():
    """One Chromium (and Playwright driver) for the session: starting them takes a second or two, a fresh context
    per test (its own cookies, storage and cache) takes a few milliseconds. ``None`` when there is no Chromium.

    Playwright's sync API leaves its event loop marked as running in this thread for as long as it is started, and
    Django refuses ORM calls (and async_to_sync) in a thread with a running loop. So the loop is unmarked between
    browser tests and marked again only while a test has a ``page`` (the loop is idle then: it runs only inside a
    Playwright call)."""
    path = chromium_path()
    if not path:
        yield None
        return
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        yield browser, loop
    finally:
        asyncio.events._set_running_loop(loop)
        try:
            browser.close()
        finally:
            playwright.stop()
            asyncio.events._set_running_loop(None)


@pytest.fixture
def page(_chromium, monkeypatch):
    if _chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    browser, loop = _chromium
    # The test's own ORM calls are synchronous, in this thread, while Playwright's loop is marked as running here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    asyncio.events._set_running_loop(loop)
    try:
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        try:
            yield context.new_page()
        finally:
            context.close()
    finally:
        asyncio.events._set_running_loop(None)


# Runs in every frame before the page's own scripts (and is not subject to the page's CSP itself).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("CSP violation: " + JSON.stringify({
    directive: event.effectiveDirective, blocked: event.blockedURI, document: event.documentURI,
    source: event.sourceFile, line: event.lineNumber, sample: event.sample,
  }));
});
"""


@pytest.fixture
def csp_violations(page):
    """Content-Security-Policy violations in ``page`` and its frames, as they happen: ``securitypolicyviolation``
    events, and Chromium's own console reports (a frame refused by ``frame-ancestors`` is reported only there)."""
    violations = []

    def seen(message):
        if message.text.startswith("CSP violation: ") or "Content Security Policy" in message.text:
            violations.append(message.text)

    page.add_init_script(CSP_LISTENER)
    page.on("console", seen)
    return violations


@pytest.fixture
def other_site():
    """Another origin's web pages: ``(pages, origin)``; ``pages[path] = html`` serves it on 127.0.0.1 (its own port),
    while live_server is on localhost. A real server, not a Playwright route (Chromium refuses a page it thinks is
    public access to the loopback address)."""
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pages, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
