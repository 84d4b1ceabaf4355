"""A synthetic study's accession through the real pipeline, in a real browser (Debian's
Chromium driven by Playwright).

``radpipe web`` runs in local mode with the bundled apps: the hemorrhage app's stages run
in the web app's worker thread against the embedded archive (pynetdicom's Query/Retrieve
SCP) that holds a small synthetic CT head study, with ONNX Runtime in-process and the
local artifact store. A requester types the accession, picks the app, submits, and the job
page follows the job by server-sent events, in place, to Succeeded; the PDF report is
served as application/pdf and names the accession. Screenshots go to
var/test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.browser.helpers import MARK_JS, SAME_JS, follows_events, shot, sign_in
from tests.fixtures.web import PipelineWeb

PIPELINE_STAGES = ("fetch", "classify", "preprocess", "infer", "postprocess", "report", "deliver")


def test_synthetic_study_through_the_real_pipeline_to_its_pdf(
    page: Any, pipeline_web: PipelineWeb
) -> None:
    """A synthetic CT study's accession, typed into the request page, goes through every
    real stage (fetch from the embedded archive, classify, preprocess, infer with the
    bundled ONNX model, postprocess, report, deliver) while the job page follows it live."""
    live = pipeline_web.live
    sign_in(page, live, "rex")
    page.get_by_label("Accession number").fill(pipeline_web.accession)
    page.get_by_label("Brain hemorrhage detection").check()
    shot(page, "10-pipeline-request")
    page.get_by_role("button", name="Request analysis").click()
    page.wait_for_url(re.compile(r"/jobs/rp-[0-9a-f]{12}$"))
    uid = page.url.rsplit("/", 1)[-1]
    page.evaluate(MARK_JS)
    follows_events(page)
    stages = page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.stage)")
    assert stages == list(PIPELINE_STAGES)
    page.locator('#timeline li[data-stage="classify"].step-succeeded').wait_for(timeout=90_000)
    shot(page, "11-pipeline-running")
    page.locator("#job-phase .phase-succeeded").wait_for(timeout=180_000)
    assert page.evaluate(SAME_JS), "the job page reloaded instead of updating in place"
    states = page.locator("#timeline .step-state").all_inner_texts()
    assert states == ["Succeeded"] * len(stages), states
    assert "Sent to: demo-archive" in page.locator("#delivery").inner_text()  # the archive
    findings = page.locator("#findings table", has_text="Finding").first
    rows = findings.locator("tbody tr").all_inner_texts()
    assert len(rows) == 6, rows  # one sentence per output: any + five subtypes
    assert all("hemorrhage" in row.lower() for row in rows), rows
    assert page.locator("#series-title + .table-wrap tbody tr").count() >= 1  # chosen series
    assert page.locator("iframe.pdf").get_attribute("src") == f"/jobs/{uid}/report.pdf"
    pdf = page.request.get(live.url + f"/jobs/{uid}/report.pdf")
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf.body(), capture_output=True, check=True
    ).stdout.decode()
    assert pipeline_web.accession in text, "the report names the study's accession"
    assert "hemorrhage" in text.lower() and "research" in text.lower()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    assert Path(info.value.path()).read_bytes() == pdf.body()
    page.wait_for_timeout(500)  # let the inline PDF viewer draw before the screenshot
    shot(page, "12-pipeline-succeeded")
