"""`benchmarks/targets.py` says which of issue 27's targets a run met, from figures given here.

Nothing is measured: the verdicts are built from made-up rows in the shape
`runtime.py` writes, so what is checked is the reading (each figure against the
floor of the same run, the memory target as 0.8 × the SQLite floor), never a
timing. The benchmark modules put their folder on `sys.path` and import each
other by plain names (`runtime`, `memory`, `shapes` …): the fixture takes them
out again so no other test sees them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def targets() -> Iterator[ModuleType]:
    path, modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("targets")
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            # Only the benchmarks' own modules: a library taken out and imported again
            # would no longer be the one its other modules hold (alembic's `context`).
            if str(BENCHMARKS) in str(getattr(sys.modules[name], "__file__", "")):
                del sys.modules[name]


def floor(database: str, shape: str, runs_per_s: float) -> dict[str, Any]:
    return {
        "engine": f"floor ({database})",
        "database": database,
        "shape": shape,
        "runs_per_s": runs_per_s,
        "cpu_ms_per_run": 0.2,
    }


def wfc(database: str, workers: int, shape: str, runs_per_s: float, gap: float = 0.5) -> Any:
    return {
        "engine": "wfc",
        "database": database,
        "workers": workers,
        "shape": shape,
        "runs_per_s": runs_per_s,
        "stage_gap_p50_ms": gap,
        "stage_gap_p99_ms": gap,
        "cpu_ms_per_run": {"machine": 9.0, "workers": 4.0, "postgres": 0.0, "driver": 4.0},
    }


def verdicts(targets: ModuleType, results: list[Any], **options: Any) -> dict[str, Any]:
    memory = options.get("memory", {})
    dbos = options.get("dbos", True)
    measured = targets.Measured(results, memory, {"sqlite": {"dequeued": 17, "handed": 8}}, dbos)
    return {target: (text, met) for target, text, met in targets.verdicts(measured)}


def find(table: dict[str, Any], start: str) -> tuple[str, str]:
    (key,) = [k for k in table if k.startswith(start)]
    text, met = table[key]
    return text, met


def test_the_memory_target_is_read_against_this_runs_sqlite_floor(targets: ModuleType) -> None:
    slow_day = [floor("sqlite", "seq3", 1_000)]
    table = verdicts(targets, slow_day, memory={"seq3": {"runs_per_s": 850, "cpu_ms_per_run": 1}})
    text, met = find(table, "memory adapters, seq3")
    assert met == "yes"  # 850 ≥ 0.8 × 1,000, though far under a fixed 3,200
    assert "0.8 × 1,000 = 800" in text
    table = verdicts(targets, slow_day, memory={"seq3": {"runs_per_s": 750, "cpu_ms_per_run": 1}})
    assert find(table, "memory adapters, seq3")[1] == "no"


def test_a_share_of_the_floor_is_met_from_the_floor_of_the_same_database_and_shape(
    targets: ModuleType,
) -> None:
    results = [
        floor("sqlite", "seq3", 1_000),
        floor("sqlite", "fan", 400),
        floor("postgres", "seq3", 300),
        wfc("sqlite", 1, "seq3", 250),
        wfc("sqlite", 1, "fan", 99),
        wfc("sqlite", 0, "seq3", 300),
        wfc("postgres", 4, "seq3", 179),
    ]
    table = verdicts(targets, results)
    assert find(table, "SQLite, one worker, seq3")[1] == "yes"  # exactly a quarter
    assert find(table, "SQLite, one worker, fan")[1] == "no"  # 99 < 100
    assert find(table, "SQLite, in process (`wfc run`), seq3")[1] == "yes"
    assert find(table, "SQLite, in process (`wfc run`), fan") == ("not measured", "–")
    text, met = find(table, "PostgreSQL, 4 workers, seq3")
    assert (met, text.split(";")[0]) == ("no", "179 against 300 runs/s: 59.7%")


def test_the_stage_gap_target_needs_every_sqlite_case_under_2_ms(targets: ModuleType) -> None:
    quick = [wfc("sqlite", w, s, 100, gap=1.9) for w in (0, 1) for s in ("seq3", "fan")]
    assert find(verdicts(targets, quick), "SQLite, stage→stage")[1] == "yes"
    one_slow = [*quick[:3], wfc("sqlite", 1, "fan", 100, gap=2.0)]
    text, met = find(verdicts(targets, one_slow), "SQLite, stage→stage")
    assert met == "no" and "one worker fan 2.0 ms" in text


def test_dbos_is_shown_beside_wfc_and_said_skipped_without_it(targets: ModuleType) -> None:
    dbos = {**wfc("postgres", 4, "seq3", 50), "engine": "dbos"}
    results = [floor("postgres", "seq3", 300), wfc("postgres", 4, "seq3", 200), dbos]
    table = verdicts(targets, results)
    assert "(DBOS 50: 4.0×)" in find(table, "PostgreSQL, 4 workers, seq3")[0]
    assert find(table, "PostgreSQL, 4 workers, ahead of DBOS") == ("seq3 4.0×", "yes")
    skipped = verdicts(targets, results[:2], dbos=False)
    assert find(skipped, "PostgreSQL, 4 workers, ahead of DBOS") == ("skipped (--no-dbos)", "–")


def test_the_main_table_shows_the_in_process_rows(
    targets: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    report = sys.modules["runtime_report"]
    memory = wfc("memory", 0, "seq3", 400) | {"peak_rss_mb": 70.0}
    in_process = wfc("sqlite", 0, "seq3", 100) | {"statements_per_stage": 12.5}
    report.print_table([floor("sqlite", "seq3", 1_000), memory, in_process], {})
    lines = capsys.readouterr().out.splitlines()
    memory_line = next(line for line in lines if "| memory |" in line)
    assert "| in process |" in memory_line and "| 40.0% |" in memory_line
    assert "| 70 MB |" in memory_line and "(– / 4.0)" in memory_line
    sqlite_line = next(line for line in lines if "| wfc | sqlite |" in line)
    assert "| 12.5 (all) |" in sqlite_line and "| 10.0% |" in sqlite_line
