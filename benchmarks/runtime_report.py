"""`runtime.py`'s main table, printed from its rows (and read by `targets.py`).

A row is a dict: `engine` ("wfc", "dbos", or "floor (…)"), `database`
("memory", "sqlite", "postgres"), `workers` (0: served in the process that
creates the runs), `shape`, and the figures measured for it. "of the floor" is
a row's runs/s over the floor's measured in the same run for its database and
shape; the memory adapters are read against the SQLite floor, the machine's
yardstick for them (see `targets.py`).
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def find(results: list[Row], engine: str, database: str, workers: int, shape: str) -> Row | None:
    """The row of that case, if it was measured."""
    for row in results:
        same = (row["engine"], row["database"], row["shape"]) == (engine, database, shape)
        if same and row.get("workers") == workers:
            return row
    return None


def floor_of(results: list[Row], database: str, shape: str) -> Row | None:
    """The floor a row of `database` and `shape` is read against, if it was measured."""
    wanted = "sqlite" if database == "memory" else database
    for row in results:
        if row["engine"].startswith("floor") and (row["database"], row["shape"]) == (
            wanted,
            shape,
        ):
            return row
    return None


def workers_shown(row: Row) -> str:
    return "in process" if row.get("workers") == 0 else str(row.get("workers", 1))


def runs_per_s(row: Row) -> str:
    """Runs/sec, with the range over repeats (`--repeat`) when there was more than one."""
    shown = f"{row['runs_per_s']:.0f}"
    if "runs_per_s_range" in row:
        low, high = row["runs_per_s_range"]
        shown += f" ({low:.0f}–{high:.0f})"
    return shown


def cpu_per_run(row: Row) -> str:
    """The burst's CPU per run, where measured (wfc cases on Linux): the machine's, then
    the workers' (and PostgreSQL's) and this process's, or this process's alone when it
    served the runs."""
    cpu = row.get("cpu_ms_per_run")
    if not cpu:
        return "–"
    if row.get("workers") == 0:
        return f"{cpu['machine']:.1f} ms (– / {cpu['driver']:.1f})"
    spent = f"{cpu['workers']:.1f} / "
    if row["database"] == "postgres":
        spent += f"{cpu['postgres']:.1f} / "
    return f"{cpu['machine']:.1f} ms ({spent}{cpu['driver']:.1f})"


def statements_shown(row: Row, statements: dict[str, dict[str, float]]) -> str:
    """A wfc row's SQL statements per stage: counted over its own burst when served in
    process (creation and claim included), else the database's dequeued / handed count."""
    if row["engine"] != "wfc" or row["database"] == "memory":
        return "–"
    if "statements_per_stage" in row:
        return f"{row['statements_per_stage']:.1f} (all)"
    counted = statements.get(row["database"])
    return f"{counted['dequeued']:.1f} / {counted['handed']:.1f}" if counted else "–"


def share_of_floor(row: Row, results: list[Row]) -> str:
    floor = floor_of(results, row["database"], row["shape"])
    if floor is None or row["engine"].startswith("floor"):
        return "–"
    return f"{100 * row['runs_per_s'] / floor['runs_per_s']:.1f}%"


def latencies(row: Row) -> str:
    """Run p50 | p99 | stage→stage p50 | p99, where measured."""
    run = (
        f"{row['latency_p50_ms']:.1f} ms | {row['latency_p99_ms']:.1f} ms"
        if "latency_p50_ms" in row
        else "– | –"
    )
    gap = (
        f"{row['stage_gap_p50_ms']:.1f} ms | {row['stage_gap_p99_ms']:.1f} ms"
        if "stage_gap_p50_ms" in row
        else "– | –"
    )
    return f"{run} | {gap}"


def print_table(
    results: list[Row], statements: dict[str, dict[str, float]], *, ratios: bool = True
) -> None:
    """The table, then (with `ratios`) wfc's runs/s over DBOS's where both ran: `targets.py`
    leaves those out, as its target rows say them."""
    print(
        "| engine | db | workers | shape | runs/s | of the floor | first burst | run p50 | run p99 "
        "| stage→stage p50 | p99 | SQL per stage | peak RSS "
        "| CPU per run: machine (workers / PostgreSQL / driver) |"
    )
    print("|" + "---|" * 14)
    for r in results:
        if r["engine"].startswith("floor"):
            print(
                f"| {r['engine']} | {r['database']} | 1 | {r['shape']} | {r['runs_per_s']:.0f} "
                f"| 100% | – | – | – | – | – | – | – | {r['cpu_ms_per_run']:.2f} ms (this process) |"
            )
            continue
        first = r.get("first_burst_runs_per_s")
        rss = f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "–"
        print(
            f"| {r['engine']} | {r['database']} | {workers_shown(r)} | {r['shape']} "
            f"| {runs_per_s(r)} | {share_of_floor(r, results)} "
            f"| {f'{first:.0f}' if first else '–'} | {latencies(r)} "
            f"| {statements_shown(r, statements)} | {rss} | {cpu_per_run(r)} |"
        )
    if ratios:
        print_ratios(results)
    print(
        "SQL per stage: a worker's statements per stage execution, dequeued / handed to the "
        "worker that ran the stage before; in process, all the burst sent over its stages."
    )


def print_ratios(results: list[Row]) -> None:
    """wfc's runs/s over DBOS's, for each case both were measured in."""
    for theirs in [r for r in results if r["engine"] == "dbos"]:
        ours = find(results, "wfc", theirs["database"], theirs["workers"], theirs["shape"])
        if ours:
            ratio = ours["runs_per_s"] / theirs["runs_per_s"]
            print(
                f"wfc/DBOS runs/s, {theirs['shape']}, {theirs['workers']} worker(s), "
                f"{theirs['database']}: {ratio:.2f}×"
            )
