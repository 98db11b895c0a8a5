"""A real headless browser for tests: Debian's Chromium driven by Playwright (no browser download).

``.ci/run`` installs the chromium package; elsewhere set CHROMIUM_PATH or install it. Tests using the ``page``
fixture skip only when no Chromium is found, and CI always has one."""

import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
