"""The memory store's claim takes the best PENDING run without filtering every one for
each claim (`claim_next_pending_run`): it must still take the best run of the plans
served, and say whether another of them waits."""

from __future__ import annotations

from dataclasses import replace

from wfc.runtime.adapters.memory import FakeClock, MemoryPersistence
from wfc.testing.port_fixtures import a_run


async def _store(*runs: tuple[str, str, int]) -> MemoryPersistence:
    """Runs `(id, plan, priority)`, created a second apart in this order."""
    clock = FakeClock()
    store = MemoryPersistence(clock)
    for run_id, plan, priority in runs:
        made = a_run(clock, run_id, priority=priority)
        await store.create_run(replace(made, plan_fingerprint=plan))
        clock.advance(seconds=1)
    return store


async def test_another_plans_run_waiting_is_not_another_pending() -> None:
    store = await _store(("mine", "p", 5), ("theirs", "q", 5))
    claim = await store.claim_next_pending_run(plans=["p"])
    assert claim is not None and claim.run.id == "mine" and not claim.others_pending
    assert await store.claim_next_pending_run(plans=["p"]) is None


async def test_the_best_served_run_when_the_best_is_another_plans() -> None:
    store = await _store(("theirs", "q", 9), ("old", "p", 5), ("new", "p", 5), ("top", "p", 7))
    taken = []
    while (claim := await store.claim_next_pending_run(plans=["p"])) is not None:
        taken.append((claim.run.id, claim.others_pending))
    assert taken == [("top", True), ("old", True), ("new", False)]
    claim = await store.claim_next_pending_run()
    assert claim is not None and claim.run.id == "theirs" and not claim.others_pending


async def test_a_burst_is_claimed_in_claim_order() -> None:
    runs = [(f"r{n}", "p", n % 3) for n in range(60)]
    store = await _store(*runs)
    taken = []
    while (claim := await store.claim_next_pending_run(plans=["p"])) is not None:
        taken.append(claim.run.id)
    expected = [run_id for run_id, _, _ in sorted(runs, key=lambda r: (-r[2], int(r[0][1:])))]
    assert taken == expected
