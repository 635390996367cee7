"""A NUL typed into the dashboard's address is a bad request, not a database failure.

On PostgreSQL, `/runs?q=%00`, `/runs?workflow=%00`, a run id in `/runs?before=` and
`/workflows/sha256:%00` sent the NUL to the database, which refuses it in text ("invalid byte sequence for encoding UTF8"): the
page said "the database failed" with a 503, as if the database were down, while SQLite
answered 200. Now every store answers as for any bad query string (400) or unknown plan
(404), before the database is asked.
"""

from __future__ import annotations

import pytest

from tests.web.conftest import OpenDashboard

KINDS = ["memory", "sqlite", "postgres"]  # postgres skips without WFC_TEST_DATABASE_URL


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "query",
    [
        "q=abcd%00",
        "workflow=linear%00",
        "q=%00&status=COMPLETED",
        "before=2024-01-01T00:00:00%2B00:00~ab%00cd",  # the "older" link's cursor
    ],
)
def test_a_nul_in_a_runs_filter_is_a_bad_request(
    open_dashboard: OpenDashboard, kind: str, query: str
) -> None:
    page = open_dashboard(kind).client.get(f"/runs?{query}")
    assert page.status_code == 400, page.text
    assert "NUL" in page.text and "database failed" not in page.text


@pytest.mark.parametrize("kind", KINDS)
def test_a_nul_in_a_plan_address_is_an_unknown_plan(
    open_dashboard: OpenDashboard, kind: str
) -> None:
    page = open_dashboard(kind).client.get("/workflows/sha256:%00")
    assert page.status_code == 404, page.text
    assert "no kept plan" in page.text
