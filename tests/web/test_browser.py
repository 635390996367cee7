"""The dashboard in a real headless browser: the runs page filters, a refresh waits while a
link is pressed, a run's page follows a stage to COMPLETED while a worker runs it, a run is
cancelled with a confirmation, and a read-only dashboard refuses actions. Screenshots go to a
temporary folder, or to docs/images/ with WFC_UI_SCREENSHOTS=1 (how the README's were taken)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.kernel.conftest import Count, Script
from tests.web.browser import Backdrop, Served, chromium_or_skip
from wfc.errors import NonRetryableError
from wfc.runtime import RunCreate, WorkerHost, run_and_wait
from wfc.web.app import UiSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DOC = {"text": "the quick brown fox"}
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 10_000


class Site:
    """The served dashboards (actions allowed, and read-only) over one database."""

    def __init__(self, backdrop: Backdrop, allowed: Served, read_only: Served, shots: Path):
        self.backdrop, self.allowed, self.read_only, self.shots = (
            backdrop,
            allowed,
            read_only,
            shots,
        )

    def create(self, workflow_id: str = "linear") -> str:
        created = self.backdrop.call(
            self.backdrop.kernel.dispatch(
                RunCreate(
                    idempotency_key=self.backdrop.kernel.deps.ids.new_id(),
                    workflow_id=workflow_id,
                    input=DOC,
                )
            )
        )
        return created.workflow_run_id

    def finish(self, workflow_id: str = "linear") -> str:
        run = self.backdrop.call(
            run_and_wait(self.backdrop.kernel, workflow_id, DOC, timeout=timedelta(seconds=20))
        )
        return run.run_id


@pytest.fixture(scope="module")
def script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, script: Script) -> Iterator[Site]:
    chromium_or_skip()
    folder = tmp_path_factory.mktemp("ui")
    url = f"sqlite+aiosqlite:///{folder / 'wfc.db'}"
    backdrop = Backdrop(url, script)
    fast = UiSettings(run_refresh_ms=300, runs_refresh_ms=1000, can_rerun=True)
    allowed = Served(url, backdrop.registry, replace(fast, allow_actions=True))
    read_only = Served(url, backdrop.registry, fast)
    shots = ROOT / "docs" / "images" if os.environ.get("WFC_UI_SCREENSHOTS") else folder
    try:
        yield Site(backdrop, allowed, read_only, shots)
    finally:
        allowed.stop()
        read_only.stop()
        backdrop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def test_the_runs_page_filters_by_status(site: Site, script: Script, page: Page) -> None:
    from playwright.sync_api import expect

    done = [site.finish("fanout"), site.finish()]
    script.then("count", NonRetryableError("the counter is out of order"))
    failed = site.finish()
    page.goto(f"{site.allowed.base}/runs")
    rows = page.locator("tr[data-run]")
    expect(rows).to_have_count(3)
    page.set_viewport_size({"width": 1200, "height": 360})
    page.screenshot(path=str(site.shots / "runs-page.png"), full_page=True)
    page.select_option("#status", "FAILED")
    expect(rows).to_have_count(1)
    expect(page.locator(f'tr[data-run="{failed}"]')).to_contain_text("FAILED")
    page.select_option("#status", "COMPLETED")
    expect(rows).to_have_count(2)
    page.fill("#q", done[0][:8])
    expect(rows).to_have_count(1)
    page.locator(f'tr[data-run="{done[0]}"] a').click()
    expect(page.locator("#run-status")).to_have_text("COMPLETED")
    expect(page.locator(".layer")).to_have_count(3)


def test_a_refresh_waits_while_a_link_is_pressed(site: Site, page: Page) -> None:
    """The runs table refreshes every second here: a refresh landing between a click's mousedown
    and mouseup would replace the link, and the click would be lost."""
    from playwright.sync_api import expect

    run = site.finish()
    page.goto(f"{site.allowed.base}/runs?q={run[:8]}")
    link = page.locator(f'tr[data-run="{run}"] a')
    link.evaluate("a => { a.dataset.pressed = 'yes'; }")
    box = link.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    with page.expect_response(lambda response: "/runs/table" in response.url):
        pass
    page.wait_for_timeout(200)
    expect(page.locator('a[data-pressed="yes"]')).to_have_count(1)
    page.mouse.up()
    expect(page.locator("#run-status")).to_have_text("COMPLETED")


def test_a_run_page_follows_a_stage_to_completed(site: Site, script: Script, page: Page) -> None:
    from playwright.sync_api import expect

    gate = threading.Event()

    def held(ctx: Any) -> Count:
        gate.wait(20)
        return Count(count=len(ctx.input.words))

    script.then("count", held)
    worker = WorkerHost(
        site.backdrop.kernel,
        orchestration_interval=timedelta(milliseconds=100),
        job_poll_interval=timedelta(milliseconds=50),
        shutdown_grace=timedelta(seconds=5),
    )
    site.backdrop.call(worker.start())
    try:
        run_id = site.create()
        page.goto(f"{site.allowed.base}/runs/{run_id}")
        count = page.locator('.box[data-stage="count"]')
        expect(count).to_have_attribute("data-status", "RUNNING")
        expect(page.locator('.box[data-stage="split"]')).to_have_attribute(
            "data-status", "COMPLETED"
        )
        page.locator("#stage-split summary").click()  # stays open across live swaps
        page.screenshot(path=str(site.shots / "run-page.png"), full_page=True)
        gate.set()
        expect(count).to_have_attribute("data-status", "COMPLETED")
        expect(page.locator("#run-status")).to_have_text("COMPLETED")
        expect(page.locator("#stage-split")).to_have_attribute("open", "")
        expect(page.locator("#run-live")).not_to_have_attribute("hx-trigger", "every 300ms")
        expect(page.locator(".bar")).to_have_count(3)
    finally:
        gate.set()
        site.backdrop.call(worker.stop())


def test_cancel_a_run_after_confirming(site: Site, page: Page) -> None:
    from playwright.sync_api import expect

    run_id = site.create()  # no worker now: it stays PENDING until cancelled
    page.goto(f"{site.allowed.base}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("PENDING")
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    page.click("#cancel")
    expect(page.locator("#action-result")).to_contain_text(f"cancelled run {run_id}")
    expect(page.locator("#run-status")).to_have_text("CANCELLED")
    expect(page.locator("#cancel")).to_have_count(0)
    assert asked and "Cancel run" in asked[0]


def test_a_read_only_dashboard_refuses_actions(site: Site, page: Page) -> None:
    from playwright.sync_api import expect

    run_id = site.create()
    page.goto(f"{site.read_only.base}/runs/{run_id}")
    expect(page.locator("#mode")).to_have_text("read-only")
    expect(page.locator("#cancel")).to_have_count(0)
    answer = page.evaluate(
        """async (url) => {
            const r = await fetch(url, {method: "POST", headers: {"HX-Request": "true"}});
            return [r.status, await r.text()];
        }""",
        f"/runs/{run_id}/cancel",
    )
    assert answer[0] == 403 and "actions are off" in answer[1]
    expect(page.locator("#run-status")).to_have_text("PENDING")
