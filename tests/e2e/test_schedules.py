"""`wfc schedules` and two real `wfc worker` processes firing a plan's schedule once per tick.

The CLI cases run in process (`CliRunner`) on a SQLite file. The worker case
compiles the `counted` workflow, declares an every-minute schedule in its plan,
starts two workers on one SQLite file and, instead of waiting for the next
whole minute, moves the schedule's tick to a second from now: both workers
see it due, and exactly one run is created for it, which the workers finish.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from tests.e2e.workers import counted_package, environment, start_worker, stop, wait_until, wfc
from wfc.cli import cli
from wfc.plan import Plan, ScheduleSpec
from wfc.runtime.adapters.memory import SystemClock
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.adapters.sql.schema import schedules
from wfc.runtime.kernel.plans import plan_record
from wfc.runtime.records import RunRecord, Status
from wfc.runtime.registry import load_plan_path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"


def _runs(url: str) -> list[RunRecord]:
    async def read() -> list[RunRecord]:
        storage = open_storage(url)
        try:
            return await storage.persistence.list_runs(limit=1000)
        finally:
            await storage.close()

    return asyncio.run(read())


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_bad_cron_timezone_or_input_is_one_line_and_exit_2(db: str) -> None:
    base = ("schedules", "add", "n", "--workflow", "w", "--db", db)
    for extra, says in (
        (("--cron", "61 * * * *"), "bad cron expression '61 * * * *'"),
        (("--cron", "0 6 * * *", "--timezone", "Europe/Nowhere"), "unknown time zone"),
        (("--cron", "0 6 * * *", "--input", "{oops"), "--input: not JSON"),
        (("--cron", "0 6 * * *", "--input", "[1]"), "--input: must be a JSON object"),
    ):
        code, out, err = _invoke(*base, *extra)
        assert code == 2 and out == ""
        assert err.startswith("wfc schedules add: ") and says in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = _invoke("schedules", "list", "--db", db)  # the refusals created nothing,
    assert code == 1 and "no wfc database at" in err  # not even the database


def test_add_checks_input_against_the_recorded_plan_then_lists_pauses_and_deletes(
    db: str, tmp_path: Path
) -> None:
    workflow = load_plan_path(counted_package(tmp_path))

    async def record() -> None:
        storage = open_storage(db)
        await storage.prepare()  # as the CLI finds it: migrated
        await storage.persistence.record_plans([plan_record(workflow, SystemClock().now())])
        await storage.close()

    asyncio.run(record())
    add = ("schedules", "add", "six", "--workflow", "counted", "--cron", "0 6 * * *", "--db", db)
    code, _, err = _invoke(*add, "--input", '{"n": "x", "m": 1}')
    assert code == 2
    assert err.strip() == (
        "wfc schedules add: --input for counted: m: not a field of the input; n: expected integer"
    )
    code, out, _ = _invoke(*add, "--input", '{"n": 1}', "--timezone", "Europe/Paris")
    assert code == 0 and out.startswith("added schedule six of counted: next run at ")
    code, _, err = _invoke(*add, "--input", '{"n": 1}')
    assert code == 1 and "already has a schedule 'six'" in err
    assert _invoke("schedules", "pause", "six", "--db", db)[0] == 0
    code, out, _ = _invoke("schedules", "list", "--db", db, "--json")
    [listed] = json.loads(out)
    assert listed["paused"] is True and listed["source"] == "cli"
    assert listed["timezone"] == "Europe/Paris" and listed["input"] == {"n": 1}
    assert _invoke("schedules", "resume", "six", "--db", db)[0] == 0
    code, out, _ = _invoke("schedules", "list", "--db", db)
    assert "six" in out and "0 6 * * *" in out and "cli" in out
    assert _invoke("schedules", "delete", "six", "--db", db)[0] == 0
    code, _, err = _invoke("schedules", "delete", "six", "--db", db)
    assert code == 1 and "no schedule named 'six'" in err


def _declare_every_minute(package: Path) -> None:
    plan_file = package / "plan.json"
    plan = Plan.from_json(plan_file.read_text())
    every = ScheduleSpec(name="every", cron="* * * * *", input={"n": 7})
    plan_file.write_text(
        plan.model_copy(update={"schedules": (every,)}).with_fingerprint().to_json()
    )


def _declared(url: str) -> bool:
    async def read() -> bool:
        storage = open_storage(url)
        try:
            return bool(await storage.schedules.schedules())
        except Exception:  # not migrated yet
            return False
        finally:
            await storage.close()

    return asyncio.run(read())


def _due_this_minute(url: str) -> None:
    """Make the schedule due at the tick that began this minute, as if the workers had been
    down over it (`catch_up latest` fires it): no waiting for the next minute."""

    async def move() -> None:
        storage = open_storage(url)
        try:
            async with storage.engine.begin() as conn:
                tick = SystemClock().now().replace(second=0, microsecond=0)
                await conn.execute(update(schedules).values(next_due_at=tick))
        finally:
            await storage.close()

    asyncio.run(move())


def test_two_workers_fire_a_plan_s_schedule_once_per_tick(db: str, tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    _declare_every_minute(package)
    env = environment(db, tmp_path / "ledger")
    workers = [
        start_worker(package, env, tmp_path, tmp_path / f"w{i}.log", "--worker-id", f"w{i}")
        for i in range(2)
    ]
    try:
        wait_until(lambda: _declared(db), 30, "the workers to declare the schedule")
        _due_this_minute(db)
        done = wait_until(
            lambda: [r for r in _runs(db) if r.status is Status.COMPLETED], 30, "a run to finish"
        )
    finally:
        for worker in workers:
            stop(worker)
    runs = _runs(db)
    ticks = Counter((run.metadata or {}).get("tick") for run in runs)
    assert done and runs and set(ticks.values()) == {1}, ticks  # one run per tick
    assert all(run.input == {"n": 7} for run in runs)
    [row] = json.loads(wfc("schedules", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert row["source"] == "plan" and row["last_outcome"] == "started"
    assert row["last_run_id"] in {run.id for run in runs}
