"""The web pages in a real browser: Debian's Chromium driven by Playwright (no browser
download), against the app served by uvicorn on loopback with the fast webtoy app.

Covers: sign-in required, the accession check as you type, a request watched from
Pending to Succeeded with the PDF opened and downloaded, the PACS launch link, the live
job list, a radiologist's review, and accessibility basics (labels, contrast, keyboard).
Live updates come by server-sent events: the pages are checked to use them and to change
in place, never reloading. (test_web_pipeline.py does the same on the real pipeline.)
Screenshots go to var/test-artifacts/browser/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.browser.helpers import MARK_JS, SAME_JS, follows_events, shot, sign_in
from tests.fixtures.web import PASSWORDS, LiveServer


def test_sign_in_is_required_and_returns_to_the_page(page: Any, live_web: LiveServer) -> None:
    page.goto(live_web.url + "/jobs?app=webtoy")
    assert "/login?next=" in page.url
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shot(page, "01-sign-in")
    page.get_by_label("User name").fill("rex")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong user name or password."
    page.get_by_label("Password").fill(PASSWORDS["rex"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_web.url + "/jobs?app=webtoy")
    assert page.get_by_role("heading", name="Jobs").is_visible()


def test_accession_is_checked_as_you_type(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "rex")
    field = page.get_by_label("Accession number")
    rule = page.locator("#accession-rule").inner_text()
    assert "1 to 16 characters" in rule
    field.fill("bad acc!")
    error = page.locator("#accession-error")
    assert "Only letters, digits" in error.inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    shot(page, "02-request-invalid-accession")
    field.fill("ACC-2024-001")
    assert error.inner_text() == ""
    assert field.get_attribute("aria-invalid") == "false"
    field.fill("")
    page.get_by_role("button", name="Request analysis").click()  # refused in the page
    assert "Enter the accession number" in error.inner_text()
    assert page.url.rstrip("/") == live_web.url


def test_request_is_watched_to_success_and_the_pdf_opens(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "rex")
    page.get_by_label("Accession number").fill("ACC-77")
    page.get_by_label("Web test analysis").check()
    assert page.get_by_label("Seconds per stage").is_visible()
    assert not page.locator('fieldset.options[data-app="glioma"]').is_visible()
    page.get_by_label("Seconds per stage").fill("0.6")
    page.get_by_text("Urgent", exact=True).click()
    shot(page, "03-request-filled")
    page.get_by_role("button", name="Request analysis").click()
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    uid = page.url.rsplit("/", 1)[-1]
    page.evaluate(MARK_JS)
    assert page.get_by_role("status").first.inner_text().startswith("Analysis requested")
    follows_events(page)
    page.locator(".step-running").first.wait_for()  # the timeline updates live
    shot(page, "04-job-running")
    page.locator("#job-phase .phase-succeeded").wait_for(timeout=30_000)
    assert page.evaluate(SAME_JS), "the job page reloaded instead of updating in place"
    assert page.locator('li[data-stage="deliver"] .step-state').inner_text() == "Succeeded"
    assert page.locator("#delivery-state").inner_text() == "Delivered"
    assert page.get_by_role("cell", name="enhancing tumour").is_visible()
    assert page.get_by_role("img", name=re.compile("Overlay 1")).is_visible()
    frame = page.locator("iframe.pdf")
    assert frame.get_attribute("src") == f"/jobs/{uid}/report.pdf"
    pdf = page.request.get(live_web.url + f"/jobs/{uid}/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    download = info.value
    assert download.suggested_filename == f"radpipe-{uid}.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    page.wait_for_timeout(500)  # let the inline PDF viewer draw before the screenshot
    shot(page, "05-job-succeeded")


def test_without_event_source_the_job_page_polls(page: Any, live_web: LiveServer) -> None:
    page.add_init_script("delete window.EventSource; window.EventSource = undefined;")
    sign_in(page, live_web, "rex")
    page.get_by_label("Accession number").fill("POLL-1")
    page.get_by_label("Web test analysis").check()
    page.get_by_label("Seconds per stage").fill("0.8")
    page.get_by_role("button", name="Request analysis").click()
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    page.evaluate(MARK_JS)
    page.locator('main[data-live="poll"]').wait_for()
    page.locator("#job-phase .phase-succeeded").wait_for(timeout=30_000)
    assert page.evaluate(SAME_JS), "the job page reloaded instead of updating in place"
    assert page.locator("iframe.pdf").count() == 1


def test_launch_link_prefills_and_submits(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "rex", "/launch?accession=LNK-42&app=webtoy")
    assert page.get_by_label("Accession number").input_value() == "LNK-42"
    assert page.get_by_label("Web test analysis").is_checked()
    shot(page, "06-launch-prefilled")
    page.goto(live_web.url + "/launch?accession=LNK-43&app=webtoy&submit=1")
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    assert page.locator(".facts").inner_text().count("LNK-43") == 1


def test_job_list_updates_itself(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "rex", "/jobs")
    page.evaluate(MARK_JS)
    follows_events(page)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(
        live_web.url + "/api/v1/jobs",
        data={"accession": "LIVE-1", "app": "webtoy", "options": {"delay": 0.4}},
        headers={"X-CSRF-Token": csrf, "Origin": live_web.url},
    )
    assert response.status == 201, response.text()
    uid = response.json()["metadata"]["name"]
    row = page.locator(f'#job-rows tr[data-uid="{uid}"]')
    row.wait_for(timeout=10_000)  # appears without reloading
    assert "LIVE-1" in row.inner_text()
    row.locator(".phase-succeeded").wait_for(timeout=20_000)
    assert page.evaluate(SAME_JS), "the job list reloaded instead of updating in place"
    assert "(live)" in page.locator("#live-note").inner_text()
    shot(page, "07-job-list")
    page.get_by_label("Status").select_option("Failed")
    page.get_by_role("button", name="Filter").click()
    assert page.locator(f'#job-rows tr[data-uid="{uid}"]').count() == 0


def test_radiologist_rejects_a_result(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "rita", "/launch?accession=REV-9&app=webtoy&submit=1")
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    page.locator("#job-phase .phase-succeeded").wait_for(timeout=30_000)
    page.get_by_label("Comment").fill("Oedema under-segmented near the ventricle.")
    page.get_by_role("button", name="Reject result").click()
    page.locator(".review-rejected").wait_for()
    assert "added to the retraining set" in page.get_by_role("status").first.inner_text()
    shot(page, "08-review-rejected")


CONTRAST_JS = """
() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || getComputedStyle(el).visibility === "hidden") continue;
    if (el.closest("figure")) continue;
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const what = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) bad.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} "${what}"`);
  }
  return bad;
}
"""

UNLABELLED_JS = """
() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.type !== "hidden" && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 80))
"""


def test_accessibility_basics(page: Any, live_web: LiveServer) -> None:
    sign_in(page, live_web, "ada", "/jobs")
    assert page.locator("html").get_attribute("lang") == "en"
    # Keyboard: the first Tab reaches the skip link, which jumps to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Through the request form to the submit button, in reading order.
    page.goto(live_web.url + "/")
    page.get_by_label("Accession number").focus()
    page.keyboard.type("KEY-1")
    order = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.name")
        if focused == "app-glioma":
            page.keyboard.press("ArrowUp")  # arrows move within the radio group (wraps)
            focused = page.evaluate("document.activeElement.id")
        order.append(focused)
        if focused == "submit-request":
            break
    assert order.index("app-webtoy") < order.index("opt-webtoy-delay")
    assert order.index("opt-webtoy-delay") < order.index("priority-routine") < order.index("email")
    assert order[-1] == "submit-request"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control must show a focus ring"
    page.keyboard.press("Enter")  # submitted by keyboard alone
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    for path in ("/", "/jobs", page.url.removeprefix(live_web.url), "/login"):
        page.goto(live_web.url + path)
        assert page.evaluate(UNLABELLED_JS) == [], path
        assert page.evaluate(CONTRAST_JS) == [], path
        assert page.locator("h1").count() == 1, path
        assert page.locator("img:not([alt])").count() == 0, path
    # A tablet in portrait: the form fits without sideways scrolling.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(live_web.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    shot(page, "09-request-tablet")
