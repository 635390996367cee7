"""Every page of the dashboard through Starlette's TestClient: what it lists, how it
filters and pages, what a run's page shows, and that user mistakes are one-line pages."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.web.conftest import Dashboard, OpenDashboard
from wfc.errors import NonRetryableError
from wfc.runtime.records import ItemRecord, StageFence, Status, WorkerRecord


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)">', html)


def test_the_runs_page_lists_newest_first_and_filters(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    done = ui.finished_run()
    ui.tk.clock.advance(seconds=1)  # newer: the fake clock would give both one instant
    waiting = ui.pending_run("fanout")
    page = ui.client.get("/runs")
    assert page.status_code == 200
    assert run_ids(page.text) == [waiting, done]
    assert f">{done[:8]}<" in page.text and "COMPLETED" in page.text
    assert ui.client.get("/").url.path == "/runs"
    assert run_ids(ui.client.get("/runs?status=completed").text) == [done]
    assert run_ids(ui.client.get("/runs/table?workflow=fanout").text) == [waiting]
    assert run_ids(ui.client.get(f"/runs?q={waiting}").text) == [waiting]
    assert "no runs match these filters" in ui.client.get("/runs?q=zzz").text
    table = ui.client.get("/runs/table").text
    assert "<html" not in table and 'hx-trigger="every 5000ms"' in table


def test_runs_are_paged_by_keyset_links(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    made = [ui.pending_run() for _ in range(5)]
    for _ in made:
        ui.tk.clock.advance(seconds=1)
    newest_first = run_ids(ui.client.get("/runs?limit=100").text)
    assert sorted(newest_first) == sorted(made)
    seen: list[str] = []
    page = ui.client.get("/runs?limit=2")
    while True:
        seen.extend(run_ids(page.text))
        older = re.search(r'id="older" href="([^"]+)"', page.text)
        if older is None:
            break
        page = ui.client.get(older.group(1).replace("&amp;", "&"))
        assert "hx-trigger" not in page.text.split("<table")[0].split('id="runs-table"')[1]
    assert seen == newest_first


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=LOST", "unknown status"),
        ("limit=0", "limit must be a number"),
        ("before=yesterday", "bad page cursor"),
        ("before=2025-01-01T00:00:00~", "bad page cursor"),
    ],
)
def test_bad_query_strings_are_a_one_line_page(
    open_dashboard: OpenDashboard, query: str, says: str
) -> None:
    page = open_dashboard().client.get(f"/runs?{query}")
    assert page.status_code == 400
    assert says in page.text and "Traceback" not in page.text


def test_a_finished_run_shows_its_plan_timeline_and_stage_data(
    open_dashboard: OpenDashboard,
) -> None:
    ui = open_dashboard()
    run_id = ui.finished_run("fanout")
    page = ui.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    html = page.text
    assert 'id="run-status">COMPLETED' in html
    assert re.findall(r'data-group="(\d)"', html) == ["1", "2", "3"]
    group_two = html.split('data-group="2"')[1].split('data-group="3"')[0]
    assert 'data-stage="upper"' in group_two and 'data-stage="length"' in group_two
    assert html.count('class="bar st-completed"') == 4
    assert "&#34;summary&#34;: &#34;THE QUICK BROWN FOX (16)&#34;" in html  # join's output
    assert "&#34;text&#34;: &#34;the quick brown fox&#34;" in html  # split's input
    live = ui.client.get(f"/runs/{run_id}/live").text
    assert "<html" not in live and "every 1000ms" not in live  # finished: no polling


def test_a_moving_run_polls_and_draws_stages_not_started(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    run_id = ui.pending_run()
    ui.call(ui.tk.tick)  # claimed: RUNNING, its first stage queued
    live = ui.client.get(f"/runs/{run_id}/live").text
    assert 'hx-trigger="every 1000ms, run-changed from:body"' in live
    assert 'data-stage="report" data-status="NOT STARTED"' in live


def test_errors_and_logs_are_redacted_on_the_page(
    open_dashboard: OpenDashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui = open_dashboard()
    secret = "sk-live-0123456789"
    ui.script.then("count", NonRetryableError(f"provider refused key {secret}"))
    run_id = ui.finished_run()
    # Stored before the variable named it a secret: the page must still not show it.
    monkeypatch.setenv("SOME_API_KEY", secret)
    html = ui.client.get(f"/runs/{run_id}").text
    assert 'id="run-status">FAILED' in html
    assert secret not in html and "provider refused key ***" in html


async def _with_child_and_items(ui: Dashboard, run_id: str) -> None:
    """Give the run's stage `count` a child run and three items (done, failed, running), as
    a `wfc:child` stage and a mapped stage leave them."""
    db = ui.tk.persistence
    run = await db.get_run(run_id)
    row = await db.get_stage(run_id, "count")
    assert run is not None and row is not None
    child = replace(run, id="child-run-1", parent_run_id=run_id, parent_stage_id="count")
    await db.create_run(replace(child, workflow_id="fanout", status=Status.RUNNING))
    await db.update_stage(row.id, {"items_total": 3, "items_done": 1, "items_failed": 1})
    now = ui.tk.clock.now()
    for index, status, error in [
        (0, Status.COMPLETED, None),
        (1, Status.FAILED, "ValueError: item 1 is bad"),
        (2, Status.RUNNING, None),
    ]:
        item = ItemRecord(
            id=f"item-{index}",
            run_id=run_id,
            stage_id="count",
            item_index=index,
            status=status,
            created_at=now,
            updated_at=now,
            attempt=1,
            error=error,
        )
        await db.start_item(item, {"status": status}, StageFence.startable(1))


def test_a_stage_links_its_child_run_and_lists_its_items(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    run_id = ui.finished_run()
    ui.call(_with_child_and_items, ui, run_id)
    html = ui.client.get(f"/runs/{run_id}/live").text
    assert '<a class="child-run mono" href="/runs/child-run-1">' in html  # on the stage's line
    assert '<li data-child="child-run-1"><a class="mono" href="/runs/child-run-1">' in html
    assert "1/3 items, 1 failed, 1 running" in html
    found = re.findall(r'<tr data-item="(\d+)" data-status="(\w+)">', html)
    assert found == [("0", "COMPLETED"), ("1", "FAILED"), ("2", "RUNNING")]
    assert "ValueError: item 1 is bad" in html
    child = ui.client.get("/runs/child-run-1").text
    assert f'<a class="parent-run mono" href="/runs/{run_id}">{run_id}</a> stage count' in child


def test_an_unknown_run_or_plan_is_a_404_page(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    assert ui.client.get("/runs/nope").status_code == 404
    assert "no run starts with" in ui.client.get("/runs/nope/live").text
    record = ui.call(ui.tk.persistence.get_run, ui.finished_run())
    assert record is not None
    ui.call(ui.tk.persistence.create_run, replace(record, id="3f2a9c1e-5b7d"))
    moved = ui.client.get("/runs/3f2a9c1e", follow_redirects=False)  # a unique prefix
    assert moved.status_code == 303 and moved.headers["location"] == "/runs/3f2a9c1e-5b7d"
    live = ui.client.get("/runs/3f2a9c1e/live", follow_redirects=False)
    assert live.headers["location"] == "/runs/3f2a9c1e-5b7d/live"
    assert ui.client.get("/runs/3f").status_code == 400  # too short to name one
    missing = ui.client.get("/workflows/sha256:0000")
    assert missing.status_code == 404 and "no kept plan" in missing.text


def test_workflows_list_the_kept_plans_and_draw_one(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard()
    assert "no plans kept yet" in ui.client.get("/workflows").text
    ui.finished_run("fanout")
    listing = ui.client.get("/workflows").text
    fingerprint = re.search(
        r'<td>fanout</td>\s*<td>Fan-out</td>\s*<td class="mono"><a href="/workflows/(sha256:[0-9a-f]+)"',
        listing,
    )
    assert fingerprint is not None
    plan = ui.client.get(f"/workflows/{fingerprint.group(1)}").text
    assert re.findall(r'data-stage="(\w+)"', plan) == ["split", "upper", "length", "join"]
    assert 'data-status="NOT STARTED"' in plan


def test_workers_lists_the_live_ones_with_their_plans_and_queues(
    open_dashboard: OpenDashboard,
) -> None:
    ui = open_dashboard()
    ui.finished_run()
    [plan] = [p for p in ui.call(ui.tk.persistence.list_plans) if p.workflow_id == "linear"]
    now = ui.tk.clock.now()
    worker = WorkerRecord(
        worker_id="worker-a",
        plans=[plan.fingerprint],
        queues=["default", "gpu"],
        started_at=now,
        seen_at=now,
        expires_at=now + timedelta(seconds=30),
    )
    ui.call(ui.tk.persistence.announce_worker, worker)
    html = ui.client.get("/workers").text
    assert "worker-a" in html and "default, gpu" in html and "linear" in html
    ui.tk.clock.advance(seconds=60)
    assert "no live worker" in ui.client.get("/workers").text


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_runs_query_pages_and_filters_on_sql(open_dashboard: OpenDashboard, kind: str) -> None:
    ui = open_dashboard(kind)
    done = ui.finished_run("fanout")
    made = []
    for _ in range(3):
        ui.tk.clock.advance(seconds=1)
        made.append(ui.pending_run())
    first = ui.client.get("/runs?limit=2").text
    assert run_ids(first) == made[::-1][:2]
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older is not None
    rest = run_ids(ui.client.get(older.group(1).replace("&amp;", "&")).text)
    assert rest == [made[0], done]
    assert run_ids(ui.client.get("/runs?status=COMPLETED").text) == [done]
    assert run_ids(ui.client.get(f"/runs?q={done[:5]}&workflow=fanout").text) == [done]
    finished = ui.call(ui.tk.persistence.get_run, done)
    assert finished is not None and finished.status is Status.COMPLETED
