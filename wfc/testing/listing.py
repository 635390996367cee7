"""The listing part of the port conformance suite: runs a page at a time, and kept plans.

A dashboard pages through runs newest first by keyset: each page starts after
the (created_at, id) of the last run of the one before, so pages neither skip
nor repeat a run, even where many runs share one instant (ties go by id), and
filters combine with it. Plans are listed most recently recorded first.
Subclass `ListingConformance` beside `PortConformance`, with the same `ports`
fixture.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from wfc.runtime.records import PlanRecord, RunRecord, Status
from wfc.runtime.run_ids import SHOWN, AmbiguousRunIdError, NoSuchRunError, resolve_run_id
from wfc.testing.conformance import Ports, a_run


def _cursor(run: RunRecord) -> tuple[datetime, str]:
    return (run.created_at, run.id)


class ListingConformance:
    async def test_keyset_pages_cover_every_run_once_newest_first(self, ports: Ports) -> None:
        p = ports.persistence
        ids = []
        for i in range(7):
            # Three runs per instant: ties are ordered by id, descending.
            run = a_run(ports.clock, f"r{i}", status=Status.FAILED if i % 2 else Status.PENDING)
            await p.create_run(run)
            ids.append(run.id)
            if i % 3 == 2:
                ports.clock.advance(seconds=1)
        expected = [r.id for r in sorted(await p.list_runs(limit=100), key=_cursor, reverse=True)]
        assert sorted(expected) == sorted(ids)
        assert expected[:4] == ["r6", "r5", "r4", "r3"]
        seen: list[str] = []
        before = None
        while page := await p.list_runs(limit=3, before=before):
            seen.extend(r.id for r in page)
            before = _cursor(page[-1])
        assert seen == expected
        failed = await p.list_runs(status=Status.FAILED, limit=2)
        assert [r.id for r in failed] == ["r5", "r3"]
        after = await p.list_runs(status=Status.FAILED, limit=2, before=_cursor(failed[-1]))
        assert [r.id for r in after] == ["r1"]

    async def test_runs_are_found_by_id_prefix_taken_literally(self, ports: Ports) -> None:
        p = ports.persistence
        for run_id in ["abc-1", "abc-2", "abd-1", "a%c-1", "a_c-1"]:
            await p.create_run(a_run(ports.clock, run_id))
            ports.clock.advance(seconds=1)
        assert [r.id for r in await p.list_runs(id_prefix="abc")] == ["abc-2", "abc-1"]
        assert [r.id for r in await p.list_runs(id_prefix="a%")] == ["a%c-1"]
        assert [r.id for r in await p.list_runs(id_prefix="a_")] == ["a_c-1"]
        assert await p.list_runs(id_prefix="zzz") == []
        assert [r.id for r in await p.list_runs(id_prefix="ab", workflow_id="wf", limit=1)] == [
            "abd-1"
        ]

    async def test_a_run_is_named_by_its_id_or_a_unique_prefix(self, ports: Ports) -> None:
        p = ports.persistence
        for run_id in ["run-1", "run-10", "abcd-1", "abce-1", "x%y_1", "xzyz-1", "mixed-Ab"]:
            await p.create_run(a_run(ports.clock, run_id))
            ports.clock.advance(seconds=1)
        assert await resolve_run_id(p, "run-1") == "run-1"  # exact, though run-10 starts so
        assert await resolve_run_id(p, "run-10") == "run-10"
        assert await resolve_run_id(p, "abcd") == "abcd-1"
        assert await resolve_run_id(p, "x%y_") == "x%y_1"  # % and _ taken literally
        with pytest.raises(AmbiguousRunIdError) as ambiguous:
            await resolve_run_id(p, "run-")
        assert ambiguous.value.candidates == ["run-10", "run-1"]  # newest first
        assert "2 runs start with 'run-'" in str(ambiguous.value)
        with pytest.raises(AmbiguousRunIdError, match="at least 4 characters"):
            await resolve_run_id(p, "abc")  # too short, though only abcd-1 and abce-1 match
        with pytest.raises(NoSuchRunError, match="no run starts with 'abcf'"):
            await resolve_run_id(p, "abcf")
        with pytest.raises(NoSuchRunError):
            await resolve_run_id(p, "mixed-ab")  # case counts, on SQLite too
        with pytest.raises(NoSuchRunError):
            await resolve_run_id(p, "run-\x00")  # no database stores it: no run has it
        for n in range(SHOWN + 2):
            await p.create_run(a_run(ports.clock, f"many-{n}"))
        with pytest.raises(AmbiguousRunIdError, match=f"more than {SHOWN} runs") as many:
            await resolve_run_id(p, "many")
        assert len(many.value.candidates) == SHOWN

    async def test_plans_are_listed_most_recently_recorded_first(self, ports: Ports) -> None:
        p = ports.persistence
        assert await p.list_plans() == []
        first = PlanRecord(
            fingerprint="sha256:a",
            workflow_id="wf",
            workflow_name="Wf",
            plan="{}",
            recorded_at=ports.clock.now(),
        )
        ports.clock.advance(seconds=5)
        second = replace(first, fingerprint="sha256:b", recorded_at=ports.clock.now())
        await p.record_plans([first, second])
        assert await p.list_plans() == [second, first]
        assert await p.list_plans(limit=1) == [second]
