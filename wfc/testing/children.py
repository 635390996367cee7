"""The child-runs part of the port conformance suite (`RunRecord.parent_run_id`,
`Persistence.children_of`).

A run keeps the run and stage that started it, as created; `children_of` lists the runs
a run started, oldest first (then by id), and no other; a transaction that rolls back
creates no child. Subclass `ChildrenConformance` beside `PortConformance`, with the same
`ports` fixture.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from wfc.runtime.records import Status
from wfc.testing.conformance import Ports, a_run


class _Rollback(Exception):
    pass


class ChildrenConformance:
    async def test_a_child_run_keeps_its_parent_and_is_listed_under_it(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "parent", status=Status.RUNNING))
        await p.create_run(a_run(ports.clock, "stranger"))
        child = replace(a_run(ports.clock, "c-2"), parent_run_id="parent", parent_stage_id="call")
        await p.create_run(child)
        ports.clock.advance(timedelta(seconds=1))
        await p.create_run(
            replace(a_run(ports.clock, "c-1"), parent_run_id="parent", parent_stage_id="other")
        )
        stored = await p.get_run("c-2")
        assert stored is not None
        assert (stored.parent_run_id, stored.parent_stage_id) == ("parent", "call")
        plain = await p.get_run("stranger")
        assert plain is not None and plain.parent_run_id is None and plain.parent_stage_id is None
        listed = await p.children_of("parent")
        assert [run.id for run in listed] == ["c-2", "c-1"]  # by creation, not by id
        assert listed[0] == stored
        assert await p.children_of("stranger") == []
        assert await p.children_of("c-2") == []
        updated = await p.update_run("c-2", {"status": Status.CANCELLED})
        assert updated.parent_run_id == "parent"  # an update leaves the link alone

    async def test_children_made_at_once_are_listed_by_id(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "parent", status=Status.RUNNING))
        for run_id in ("b", "a", "c"):
            await p.create_run(replace(a_run(ports.clock, run_id), parent_run_id="parent"))
        assert [run.id for run in await p.children_of("parent")] == ["a", "b", "c"]

    async def test_a_child_created_in_a_rolled_back_transaction_is_not_there(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "parent", status=Status.RUNNING))
        with pytest.raises(_Rollback):
            async with p.transaction() as tx:
                await tx.create_run(replace(a_run(ports.clock, "c"), parent_run_id="parent"))
                raise _Rollback()
        assert await p.children_of("parent") == []
        assert await p.get_run("c") is None
