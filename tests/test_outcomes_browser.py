"""The outcomes page in headless Chromium (tests/browser.py), as a clinic's staff member opens it: the charts drawn
with the hand-computed week's figures (read from the SVG, not just its presence), the CSV downloaded, no horizontal
overflow at 1366 px and 768 px, no CSP violation.

With FRONTDESK_SCREENSHOTS=docs/screenshots the page is also saved there (the README links it)."""

import csv
import io
import os

import pytest

from medspa.models import ClinicMembership

from .conftest import make_staff
from .test_frontdesk_browser import SIZES, no_horizontal_overflow, shoot, sign_in
from .test_outcomes import week  # noqa: F401 (the hand-computed week, a fixture)

pytest_plugins = ["tests.browser"]


@pytest.mark.django_db(transaction=True)
def test_the_outcomes_page_draws_the_weeks_figures_and_exports_them(
    live_server,
    page,
    csp_violations,
    week,  # noqa: F811
    tmp_path,
):
    la, _ = week
    make_staff("la-desk", la, role=ClinicMembership.Role.FRONT_DESK)
    base = live_server.url
    sign_in(page, base, "la-desk")
    page.get_by_role("link", name="Outcomes").click()  # from the home page
    page.get_by_label("From", exact=True).fill("2026-11-02")
    page.get_by_label("To", exact=True).fill("2026-11-08")
    page.get_by_role("button", name="Show").click()
    page.wait_for_selector("#fd-funnel")

    bars = page.eval_on_selector_all(
        "#fd-funnel g.fd-bar",
        "(gs) => gs.map((g) => [g.dataset.label, g.querySelector('.fd-bar-value').textContent,"
        " g.querySelector('rect').getBoundingClientRect().width])",
    )
    drawn = {label: (text, width) for label, text, width in bars}
    assert drawn["Conversations opened"][0] == "6 (100%)"
    assert drawn["Booked"][0] == "3 (50%)" and drawn["Showed (completed)"][0] == "1 (17%)"
    assert drawn["No-shows"][0] == "1 (17%)"
    assert drawn["Conversations opened"][1] > drawn["Booked"][1] > drawn["Showed (completed)"][1] > 0  # to scale
    hours = dict(
        page.eval_on_selector_all(
            "#fd-hours g.fd-bar",
            "(gs) => gs.map((g) => [g.dataset.label, g.querySelector('rect').getBoundingClientRect().height])",
        )
    )
    assert hours["10a"] > hours["9a"] > 0 and hours["3a"] == 0
    assert page.locator("#fd-reply-median").inner_text() == "1.0 min"
    assert page.locator("#fd-reply-p90").inner_text() == "10.0 min"
    assert "1 of 2 (50%)" in page.locator("#fd-recovered").inner_text()
    assert page.locator("#fd-estimate").inner_text().startswith("$1,180")
    assert "America/Los_Angeles" in page.locator("#fd-hours-title").inner_text()

    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        no_horizontal_overflow(page)
        shoot(page, "outcomes", tmp_path)
    if os.environ.get("FRONTDESK_SCREENSHOTS"):  # the whole page too (the hours chart is below the fold)
        page.screenshot(path=f"{os.environ['FRONTDESK_SCREENSHOTS']}/outcomes-full-768.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    path = download.value.path()
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert ["funnel", "Booked", "3"] in rows and ["first reply", "median minutes", "1.0"] in rows
    assert download.value.suggested_filename == "outcomes-la-2026-11-02-2026-11-08.csv"
    assert csp_violations == []
