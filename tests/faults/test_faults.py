"""Exactly once, whatever fails: real `wfc worker` processes under real faults.

Each scenario starts several workers on one database, creates a burst of runs, injects a
fault with a real signal or a real server action, and then checks the promises the runtime
makes whatever fails: every run ends (COMPLETED unless the scenario expects a failure), every
stage is committed exactly once (one `stage:completed` event per run and stage in the
outbox: a body may run again after a fault, its commit may not), outputs are what the stage
code computes, and no job is left RUNNING for a worker that is gone. Waits are bounded: a
run that would only be rescued by a five-minute reaper fails the test.

Leases are short (`--stale-lease 1.5`, heartbeat 0.3 s) so a lost worker's stage is reaped
within seconds; bursts are small so the module stays within its CI budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.faults.conftest import Database
from tests.faults.harness import (
    Expect,
    Fleet,
    chain_output,
    count_terminal,
    create_runs,
    ledger,
    mapped_output,
    pid_in,
    polled_output,
    snapshot,
    verify,
    wait_terminal,
    wait_until,
)
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.records import Status

STALE_LEASE = 1.5
PAUSED_HEARTBEAT = 1.0  # the paused worker's heartbeat: slower than FAST's
FAST = (
    "--concurrency",
    "4",
    "--tick-interval",
    "0.3",
    "--poll-interval",
    "0.2",
    "--stale-lease",
    str(STALE_LEASE),
    "--heartbeat",
    "0.3",
    "--grace",
    "1",
)
CHAIN_STAGES = ("a", "b", "c", "d")
POLLED_STAGES = ("a", "b", "c", "d", "wait", "z")
COMPLETED = frozenset({Status.COMPLETED})
TERMINAL_OUTCOMES = frozenset({Status.COMPLETED, Status.FAILED})


def _chain_expect(run_ids: list[str], inputs: list[int]) -> dict[str, Expect]:
    """Each run COMPLETED with what `chain` computes, each of its stages committed once."""
    pairs = zip(run_ids, inputs, strict=True)
    return {r: Expect(COMPLETED, chain_output(n), CHAIN_STAGES) for r, n in pairs}


def _polled_expect(run_ids: list[str], inputs: list[int]) -> dict[str, Expect]:
    """Each run COMPLETED with what `polled` computes, each of its stages committed once."""
    pairs = zip(run_ids, inputs, strict=True)
    return {r: Expect(COMPLETED, polled_output(n), POLLED_STAGES) for r, n in pairs}


def _no_job_of_a_dead_worker(database: Database, fleet: Fleet, run_ids: list[str]) -> None:
    """Wait (a lease or two) for the jobs of killed workers to be reaped; `verify` then says
    which, if any, are still held by the dead."""

    def settled() -> bool:
        state = snapshot(database.url, run_ids)
        alive = fleet.alive()
        return all(
            job.status is not Status.RUNNING or job.worker_id in alive
            for jobs in state.jobs.values()
            for job in jobs
        )

    try:
        wait_until(settled, 3 * STALE_LEASE + 2, "leases of dead workers to be reaped")
    except AssertionError:
        pass  # verify() names them


def _finish(
    database: Database, fleet: Fleet, run_ids: list[str], expect: dict[str, Expect]
) -> None:
    """The common verdict, then a graceful stop of every worker left (exit 0 each)."""
    _no_job_of_a_dead_worker(database, fleet, run_ids)
    verify(snapshot(database.url, run_ids), expect, fleet.alive(), f"on {database.kind}")
    codes = fleet.stop_all()
    assert set(codes.values()) <= {0}, f"workers exited with {codes}\n{fleet.logs()}"
    # Stopped gracefully, nobody may hold a job any more.
    verify(snapshot(database.url, run_ids), expect, set(), f"after stopping, on {database.kind}")


def test_kill_9_at_random_moments_during_a_burst(
    database: Database, packages: dict[str, Path], fleet: Fleet, rng: random.Random, tmp_path: Path
) -> None:
    """SIGKILL one worker at a time mid-burst, starting a fresh one in its place: the stages
    it held are reaped and run again elsewhere, each committed once."""
    runs = 48 if database.kind == "postgres" else 24
    fleet.options = FAST
    fleet.env["FAULTS_BODY_SECONDS"] = "0.05"
    chain = packages["chain"]
    fleet.start([chain], 3)
    inputs = list(range(runs))
    run_ids = create_runs(database.url, chain, [{"n": n} for n in inputs], "kill")
    fleet.wait(lambda: ledger(tmp_path / "ledger"), 30, "the first stage to start")
    for _ in range(3):
        victim = rng.choice(sorted(fleet.alive()))
        fleet.kill(victim)
        fleet.start([chain], 1)
        time.sleep(rng.uniform(0.3, 1.2))
    wait_terminal(database.url, runs, 60, fleet, "after 3 kill -9s")
    _finish(database, fleet, run_ids, _chain_expect(run_ids, inputs))
    counts = ledger(tmp_path / "ledger")
    assert all(counts[("done", r, s)] >= 1 for r in run_ids for s in CHAIN_STAGES)


def test_kill_9_mid_item_of_a_map_runs_that_item_again_and_counts_each_item_once(
    database: Database, packages: dict[str, Path], fleet: Fleet, rng: random.Random, tmp_path: Path
) -> None:
    """Mapped runs of 30 items each while workers are killed with SIGKILL mid-item: a killed
    worker's items are reaped and run again elsewhere, every item is committed once (the
    stage counts exactly its items), the map completes once and gathers the right sum."""
    fleet.options = FAST
    fleet.env["FAULTS_BODY_SECONDS"] = "0.1"
    mapped = packages["mapped"]
    fleet.start([mapped], 2)
    inputs = [[rng.randint(-9, 9) for _ in range(30)] for _ in range(3)]
    run_ids = create_runs(
        database.url, mapped, [{"items": [{"n": n} for n in items]} for items in inputs], "map"
    )
    fleet.wait(lambda: ledger(tmp_path / "ledger"), 30, "the first item to start")
    for _ in range(2):
        victim = rng.choice(sorted(fleet.alive()))
        fleet.kill(victim)
        fleet.start([mapped], 1)
        time.sleep(rng.uniform(0.4, 1.0))
    wait_terminal(database.url, len(run_ids), 90, fleet, "after 2 kill -9s mid-item")
    expect = {
        run_id: Expect(frozenset({Status.COMPLETED}), mapped_output(items), ("square", "total"))
        for run_id, items in zip(run_ids, inputs, strict=True)
    }
    _finish(database, fleet, run_ids, expect)
    counts = ledger(tmp_path / "ledger")
    assert all(counts[("done", r, f"square-{i}")] >= 1 for r in run_ids for i in range(30))

    async def items_counted() -> list[tuple[int, int, int]]:
        storage = open_storage(database.url)
        try:
            rows = [await storage.persistence.get_stage(r, "square") for r in run_ids]
            return [(row.items_total, row.items_done, row.items_failed) for row in rows if row]
        finally:
            await storage.close()

    assert asyncio.run(items_counted()) == [(30, 30, 0)] * len(run_ids)


def test_a_worker_paused_past_its_lease_has_its_late_commit_discarded(
    database: Database, packages: dict[str, Path], fleet: Fleet, tmp_path: Path
) -> None:
    """SIGSTOP a worker inside stage `a` of one run for longer than its lease: another worker
    reaps the lease, runs `a` again and commits it; then SIGCONT. The paused worker finishes
    its body and tries to commit `a` while the run is still RUNNING (`d` holds it for a few
    seconds): that late commit must be discarded, not written over the first one.

    The worker to pause runs alone at first, one slot and no maintenance tick after its
    first, and it is stopped just after one of its heartbeats, so that when it is stopped
    it is sleeping in the body and not holding a database lock (a process stopped inside
    a write transaction stalls every other writer of a SQLite file, which is not what
    this scenario is about)."""
    chain = packages["chain"]
    fleet.options = FAST
    (paused,) = fleet.start(
        [chain],
        1,
        "--concurrency",
        "1",
        "--tick-interval",
        "60",
        "--heartbeat",
        str(PAUSED_HEARTBEAT),
    )
    (victim_run,) = create_runs(
        database.url, chain, [{"n": 0, "slow": 3.0, "hold": 4.0}], "pause-victim"
    )
    marker = tmp_path / f"slow-{victim_run}"
    fleet.wait(marker.exists, 30, "the slow execution of `a` to start")
    assert fleet.by_pid(pid_in(marker)) == paused

    def lease_of_a() -> object:
        jobs = snapshot(database.url, [victim_run]).jobs[victim_run]
        return next((job.locked_at for job in jobs if job.stage_id == "a"), None)

    # Stopped just after a heartbeat, the worker is a second from its next write: not
    # inside one, where it would hold the SQLite file's write lock while stopped.
    leased_at = lease_of_a()
    fleet.wait(lambda: lease_of_a() != leased_at, 10, "a heartbeat of the worker to pause")
    fleet.pause(paused)
    paused_at = time.monotonic()
    fleet.start([chain], 2)
    inputs = list(range(1, 12))
    others = create_runs(database.url, chain, [{"n": n} for n in inputs], "pause")

    def committed_elsewhere() -> bool:
        return snapshot(database.url, [victim_run]).stage_status[victim_run].get("a") is (
            Status.COMPLETED
        )

    fleet.wait(committed_elsewhere, 6 * STALE_LEASE + 10, "another worker to commit `a`")
    # The premise: paused past its lease. The lease runs from the worker's last heartbeat
    # (every `PAUSED_HEARTBEAT` s), which may have come up to one interval before the pause.
    assert time.monotonic() - paused_at > STALE_LEASE - PAUSED_HEARTBEAT
    fleet.resume(paused)
    wait_terminal(database.url, 1 + len(inputs), 60, fleet, "after the paused worker resumed")
    counts = ledger(tmp_path / "ledger")
    assert counts[("start", victim_run, "a")] >= 2, "`a` was not run again while paused"
    run_ids = [victim_run, *others]
    _finish(database, fleet, run_ids, _chain_expect(run_ids, [0, *inputs]))


def _terminate_connections(url: str) -> int:
    """What a failover or an operator does: end every other session on the database."""

    async def terminate() -> int:
        storage = open_storage(url)
        try:
            async with storage.engine.connect() as conn:
                ended = await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                return len(ended.all())
        finally:
            await storage.close()

    return asyncio.run(terminate())


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_every_worker_connection_terminated_mid_burst(
    database: Database, packages: dict[str, Path], fleet: Fleet, rng: random.Random, tmp_path: Path
) -> None:
    """`pg_terminate_backend` on every worker session, three times during a burst: statements
    fail mid-transaction, LISTEN connections drop, and the workers must reconnect and finish
    every run with each stage committed once."""
    runs = 48
    fleet.options = FAST
    fleet.env["FAULTS_BODY_SECONDS"] = "0.05"
    chain = packages["chain"]
    fleet.start([chain], 3)
    inputs = list(range(runs))
    run_ids = create_runs(database.url, chain, [{"n": n} for n in inputs], "terminate")
    fleet.wait(lambda: ledger(tmp_path / "ledger"), 30, "the first stage to start")
    ended = 0
    for _ in range(3):
        ended += _terminate_connections(database.url)
        time.sleep(rng.uniform(0.3, 1.0))
    assert ended >= 3, "no worker session was there to terminate"
    wait_terminal(database.url, runs, 60, fleet, "after terminating every connection 3 times")
    _finish(database, fleet, run_ids, _chain_expect(run_ids, inputs))


def test_pollers_racing_on_suspended_stages_commit_each_once(
    database: Database, packages: dict[str, Path], fleet: Fleet, tmp_path: Path
) -> None:
    """a -> [b, c, d] -> wait -> z on three workers that all poll suspended stages every
    200 ms; each check takes 100 ms, like a provider's status call, so two pollers often
    check one stage at once. Both may see it Ready; only one may commit it."""
    fleet.options = (*FAST, "--tick-interval", "0.2")
    polled = packages["polled"]
    fleet.start([polled], 3)
    inputs = list(range(8))
    run_ids = create_runs(database.url, polled, [{"n": n} for n in inputs], "pollers")
    wait_terminal(database.url, len(inputs), 60, fleet, "with racing pollers")
    checkers = {
        line.split()[3]
        for line in (tmp_path / "ledger").read_text().splitlines()
        if line.startswith("check ")
    }
    _finish(database, fleet, run_ids, _polled_expect(run_ids, inputs))
    assert len(checkers) >= 2, f"only {len(checkers)} process polled: nothing raced"


def test_a_poller_killed_between_its_commit_and_the_transition(
    database: Database, packages: dict[str, Path], fleet: Fleet, tmp_path: Path
) -> None:
    """A poller commits a Ready stage, then dies (SIGKILL, from inside the next check it
    makes) before it transitions the run: nothing is left to start `z`. The run must still
    finish within seconds (a lease or two), not after the five-minute stuck-run reaper.

    Every run's check falls due on one grid, so one poll finds several stages due and
    checks the next right after committing the first: where the transition is a separate
    step after the poll's commits, that is the window, and the stage code kills its own
    worker in it (once per test). Where the commit and the transition are one, the window
    never opens, nobody dies, and the scenario is an ordinary burst of polled runs."""
    fleet.options = FAST
    fleet.env["FAULTS_DIE_AFTER_COMMIT"] = "1"
    polled = packages["polled"]
    fleet.start([polled], 2)
    inputs = list(range(6))
    run_ids = create_runs(database.url, polled, [{"n": n} for n in inputs], "poller-dies")
    died = tmp_path / "died"
    replaced = False

    def finished_or_replaced() -> bool:
        nonlocal replaced
        if died.exists() and not replaced:
            pid, _ = died.read_text().split()
            dead = fleet.by_pid(int(pid))
            wait_until(lambda: fleet.processes[dead].poll() is not None, 10, "the poller's death")
            fleet.kills += 1
            fleet.start([polled], 1)  # the fleet is back to two workers
            replaced = True
        return count_terminal(database.url) >= len(inputs)

    try:
        fleet.wait(finished_or_replaced, 10 * STALE_LEASE + 25, "every polled run to finish")
    except AssertionError as lost:
        stranded = died.read_text().split()[1] if died.exists() else run_ids[0]
        state = snapshot(database.url, [stranded])
        run = state.runs[stranded]
        raise AssertionError(
            f"run {stranded}, whose `wait` the dead poller committed, is "
            f"{run.status.value if run else 'missing'}: stages "
            f"{ {k: v.value for k, v in state.stage_status[stranded].items()} }, jobs "
            f"{[(j.stage_id, j.status.value) for j in state.jobs[stranded]]}\n{lost}"
        ) from None
    _finish(database, fleet, run_ids, _polled_expect(run_ids, inputs))


@pytest.mark.parametrize("poison", ["output", "error"])
def test_a_poison_outcome_is_not_redelivered_forever(
    database: Database, packages: dict[str, Path], fleet: Fleet, tmp_path: Path, poison: str
) -> None:
    """U+0000 in a stage's error (`a` raises with one) or in the run's output (`d` returns
    one), which PostgreSQL's text and JSONB columns refuse. The outcome must still end the
    stage within its attempts: the poisoned run fails (or completes, where the database can
    store it), the runs beside it complete, and the stage is not run again and again by
    the stale-lease reaper after each commit that could not be written."""
    fleet.options = FAST
    chain = packages["chain"]
    fleet.start([chain], 2)
    inputs = list(range(4))
    poisoned, *healthy = create_runs(
        database.url,
        chain,
        [{"n": 0, "poison": poison}] + [{"n": n} for n in inputs[1:]],
        f"poison-{poison}",
    )
    wait_terminal(database.url, len(inputs), 8 * STALE_LEASE + 15, fleet, f"poisoned {poison}")
    state = snapshot(database.url, [poisoned])
    starts = ledger(tmp_path / "ledger")
    for stage in ("a", "d"):  # where the NUL is made, and where it reaches the run's output
        jobs = [job for job in state.jobs[poisoned] if job.stage_id == stage]
        attempts = max((job.max_attempts for job in jobs), default=0)
        ran = starts[("start", poisoned, stage)]
        assert ran <= attempts, f"`{stage}` ran {ran} times, its attempts are {attempts}"
    ends = frozenset({Status.FAILED}) if poison == "error" else TERMINAL_OUTCOMES
    expect = _chain_expect(healthy, inputs[1:]) | {poisoned: Expect(ends, 5, CHAIN_STAGES)}
    _finish(database, fleet, [poisoned, *healthy], expect)
