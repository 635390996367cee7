"""The dashboard's actions: refused unless allowed (flag or token), refused from another
site or under a foreign host name, and when allowed, cancel and rerun dispatched to the
kernel with a one-line result."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import Dashboard, OpenDashboard
from wfc.runtime.records import Status


def status_of(ui: Dashboard, run_id: str) -> Status:
    run = ui.call(ui.tk.persistence.get_run, run_id)
    assert run is not None
    return run.status


def test_a_read_only_dashboard_offers_no_action_and_refuses_them(
    open_dashboard: OpenDashboard,
) -> None:
    ui = open_dashboard()
    run_id = ui.pending_run()
    page = ui.client.get(f"/runs/{run_id}").text
    assert 'id="cancel"' not in page and re.search(r'id="mode">\s*read-only', page)
    refused = ui.client.post(f"/runs/{run_id}/cancel")
    assert refused.status_code == 403
    assert "actions are off" in refused.text and "--allow-actions" in refused.text
    assert status_of(ui, run_id) is Status.PENDING


def test_cancel_when_allowed(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard(allow_actions=True)
    run_id = ui.pending_run()
    page = ui.client.get(f"/runs/{run_id}").text
    assert 'id="cancel"' in page and "hx-confirm" in page
    done = ui.client.post(f"/runs/{run_id}/cancel")
    assert done.status_code == 200 and f"cancelled run {run_id}" in done.text
    assert done.headers["HX-Trigger"] == "run-changed"
    assert status_of(ui, run_id) is Status.CANCELLED
    again = ui.client.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409 and "was not cancelled" in again.text


def test_rerun_from_a_stage_when_allowed(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard(allow_actions=True)
    run_id = ui.finished_run()
    page = ui.client.get(f"/runs/{run_id}").text
    assert 'id="rerun"' in page and "<option>count</option>" in page
    done = ui.client.post(f"/runs/{run_id}/rerun", data={"stage": "count"})
    assert done.status_code == 200, done.text
    assert "rerunning" in done.text and "count, report" in done.text
    assert status_of(ui, run_id) is not Status.COMPLETED
    refused = ui.client.post(f"/runs/{run_id}/rerun", data={"stage": "count"})
    assert refused.status_code == 409 and "only COMPLETED or FAILED runs" in refused.text
    other = ui.finished_run()
    unknown = ui.client.post(f"/runs/{other}/rerun", data={"stage": "nope"})
    assert unknown.status_code == 409 and "nope" in unknown.text


def test_rerun_is_not_offered_without_workflows(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard(allow_actions=True, can_rerun=False)
    run_id = ui.finished_run()
    assert 'id="rerun"' not in ui.client.get(f"/runs/{run_id}").text
    refused = ui.client.post(f"/runs/{run_id}/rerun", data={"stage": "count"})
    assert refused.status_code == 409 and "--plan" in refused.text
    assert ui.client.post(f"/runs/{run_id}/explode").status_code == 404


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"origin": "https://evil.example"}, "another site"),
        ({"host": "rebound.example:8765"}, "unknown host"),
    ],
)
def test_actions_from_another_site_or_host_are_refused(
    open_dashboard: OpenDashboard, headers: dict[str, str], says: str
) -> None:
    ui = open_dashboard(allow_actions=True)
    run_id = ui.pending_run()
    refused = ui.client.post(f"/runs/{run_id}/cancel", headers=headers)
    assert refused.status_code == 403 and says in refused.text
    assert status_of(ui, run_id) is Status.PENDING


def test_a_token_enables_actions_for_whoever_carries_it(open_dashboard: OpenDashboard) -> None:
    ui = open_dashboard(token="s3cret-token")
    run_id = ui.pending_run()
    assert 'id="cancel"' in ui.client.get(f"/runs/{run_id}").text
    missing = ui.client.post(f"/runs/{run_id}/cancel")
    assert missing.status_code == 401 and "token" in missing.text
    wrong = ui.client.post(f"/runs/{run_id}/cancel", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert ui.client.get("/runs?token=nope", follow_redirects=False).status_code == 401
    opened = ui.client.get("/runs?token=s3cret-token&status=PENDING", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/runs?status=PENDING"
    assert "httponly" in opened.headers["set-cookie"].lower()
    done = ui.client.post(f"/runs/{run_id}/cancel")  # the cookie carries it now
    assert done.status_code == 200 and status_of(ui, run_id) is Status.CANCELLED
    other = ui.pending_run()
    ui.client.cookies.clear()
    bearer = ui.client.post(f"/runs/{other}/cancel", headers={"X-WFC-Token": "s3cret-token"})
    assert bearer.status_code == 200
