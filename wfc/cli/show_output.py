"""What `wfc runs show` prints: the run it read (`Shown`), as JSON for tools or as text.

The two forms carry the same facts: every value `--json` has (a stage's times,
metrics, next check, progress, AI calls, traceback; an item's traceback; a log
line's time and fields) is printed in the text form too, readably. Errors, log
lines and progress messages are redacted again as they are printed: rows
written before the kernel redacted them must not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wfc.cli import children_display as kin
from wfc.cli.fleet import waiting_for, waiting_note
from wfc.cli.session import print_json, run_json
from wfc.cli.show_details import Progress, indented, log_text, stage_json, stage_lines

if TYPE_CHECKING:
    from rich.console import Console

    from wfc.runtime.ai_records import AIStats
    from wfc.runtime.records import ItemRecord, LogRecord, RunRecord, StageRecord


def console_for_tables() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped."""
    from rich.console import Console

    plain = Console()
    return plain if plain.is_terminal else Console(width=160)


def ms(value: int | None) -> str:
    return "" if value is None else f"{value} ms"


@dataclass(frozen=True, slots=True, kw_only=True)
class Shown:
    """What `runs show` reads: the run, its stages with their AI spending and artifacts
    (`{stage_id: {name: blob key}}`), and its log lines when asked for."""

    run: RunRecord
    stages: list[StageRecord]
    costs: dict[str, AIStats]
    artifacts: dict[str, dict[str, str]]
    lines: list[LogRecord]
    served: set[str]  # the plans live workers serve
    running_items: dict[str, int]  # per mapped stage: its items running now
    items: list[ItemRecord]  # the items of the stage `--items` names
    waits: dict[str, str]  # per queued stage that cannot start now: why
    tracebacks: dict[str, str]  # per failed stage whose code raised: where
    children: kin.ChildLinks  # the runs its stages started, by stage
    progress: dict[str, Progress]  # per stage that reported progress: the last it did
    item_tracebacks: dict[int, str]  # per item of `items` whose code raised: where


def items_summary(stage: StageRecord, running: int) -> dict[str, int] | None:
    """A mapped stage's items: total, done, failed, running (None for other stages)."""
    if not stage.items_total:
        return None
    return {
        "total": stage.items_total,
        "done": stage.items_done,
        "failed": stage.items_failed,
        "running": running,
    }


def print_show_json(shown: Shown, logs: bool) -> None:
    from wfc.runtime.redact import redact, redact_data

    stage_of_record = {s.id: s.stage_id for s in shown.stages}
    costs = shown.costs
    body = run_json(shown.run) | {
        "error": redact_data(shown.run.error),
        "waiting_for": waiting_for(shown.run, shown.served),
        "stages": [
            {
                "stage_id": s.stage_id,
                "name": s.stage_name,
                "status": s.status.value,
                "attempts": s.attempt,
                "duration_ms": s.duration_ms,
                "error": None if s.error is None else redact(s.error),
                "cost": costs[s.stage_id].total_cost,
                "tokens": costs[s.stage_id].total_input_tokens
                + costs[s.stage_id].total_output_tokens,
                "artifacts": [
                    {"name": name, "key": key} for name, key in shown.artifacts[s.stage_id].items()
                ],
                "items": items_summary(s, shown.running_items.get(s.stage_id, 0)),
                "waits": shown.waits.get(s.stage_id),
                "traceback": shown.tracebacks.get(s.stage_id),
            }
            | stage_json(s, costs[s.stage_id], shown.progress.get(s.stage_id))
            | kin.child_json(shown.children, s.stage_id)
            for s in shown.stages
        ],
    }
    if shown.items:
        body["items"] = [
            {
                "index": item.item_index,
                "status": item.status.value,
                "attempts": item.attempt,
                "duration_ms": item.duration_ms,
                "error": None if item.error is None else redact(item.error),
                "traceback": shown.item_tracebacks.get(item.item_index),
            }
            for item in shown.items
        ]
    if logs:
        body["logs"] = [
            {
                "at": line.created_at.isoformat(),
                "stage_id": stage_of_record.get(line.stage_record_id or ""),
                "level": line.level,
                "message": redact(line.message),
                "fields": redact_data(line.fields),
            }
            for line in shown.lines
        ]
    print_json(body)


def print_show_text(shown: Shown, logs: bool) -> None:
    """The run, its stages table, then each stage's details, waits, tracebacks, items,
    artifacts and (with `--logs`) log lines."""
    from rich.markup import escape
    from rich.table import Table

    from wfc.runtime.redact import redact

    run, costs = shown.run, shown.costs
    console = console_for_tables()
    console.print(
        f"run {run.id}  [bold]{run.workflow_id}[/]  {run.status.value}  {ms(run.duration_ms)}"
        f"  cost ${run.total_cost:.4f}  tokens {run.total_tokens}",
        highlight=False,
    )
    console.print(_run_times(run), highlight=False)
    if kin.parent_line(run):
        console.print(kin.parent_line(run), highlight=False)
    if run.error:
        message = str(run.error.get("message", run.error))
        console.print(f"[red]error:[/] {escape(redact(message))}")
    note = waiting_note([run], shown.served)
    if note:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    mapped = any(stage.items_total for stage in shown.stages)
    columns = ["stage", "status", "attempts", "duration", "cost", *(["items"] if mapped else [])]
    columns += ["child run"] if shown.children else []
    table = Table(*columns, "error")
    for stage in shown.stages:
        summary = items_summary(stage, shown.running_items.get(stage.stage_id, 0))
        counted = (
            []
            if not mapped
            else [
                ""
                if summary is None
                else f"{summary['done']}/{summary['total']} done, {summary['failed']} failed, "
                f"{summary['running']} running"
            ]
        )
        table.add_row(
            stage.stage_id,
            stage.status.value,
            # A mapped stage's attempts are its items' own, a skipped or pending stage has none:
            # "–" there, not a 0 that reads as "ran and counted nothing".
            str(stage.attempt) if stage.attempt else "–",
            ms(stage.duration_ms),
            f"${costs[stage.stage_id].total_cost:.4f}",
            *counted,
            *([kin.child_cell(shown.children, stage.stage_id)] if shown.children else []),
            escape(redact(stage.error or "")),
        )
    console.print(table)
    for stage in shown.stages:
        details = stage_json(stage, costs[stage.stage_id], shown.progress.get(stage.stage_id))
        for line in stage_lines(stage.stage_id, details):
            console.print(escape(line), highlight=False, soft_wrap=True)
    for stage_id, why in shown.waits.items():
        console.print(f"[yellow]{escape(stage_id)} {escape(why)}[/]", highlight=False)
    for stage_id, where in shown.tracebacks.items():
        console.print(
            f"[red]{escape(stage_id)} raised:[/]\n{escape(where.rstrip())}", highlight=False
        )
    _print_items(shown, console)
    _print_artifacts(shown, console)
    if logs:
        _print_logs(shown, console)


def _print_items(shown: Shown, console: Console) -> None:
    """The items `--items` asked for, and where each that raised did."""
    from rich.markup import escape
    from rich.table import Table

    from wfc.runtime.redact import redact

    if not shown.items:
        return
    listing = Table("item", "status", "attempts", "duration", "error")
    for item in shown.items:
        listing.add_row(
            str(item.item_index),
            item.status.value,
            str(item.attempt),
            ms(item.duration_ms),
            escape(redact(item.error or "")),
        )
    console.print(listing)
    for index, where in shown.item_tracebacks.items():
        console.print(f"[red]item {index} raised:[/]\n{escape(where.rstrip())}", highlight=False)


def _print_artifacts(shown: Shown, console: Console) -> None:
    from rich.markup import escape
    from rich.table import Column, Table

    listed = [
        (stage_id, name, key)
        for stage_id, named in shown.artifacts.items()
        for name, key in named.items()
    ]
    if listed:
        artifacts = Table("stage", "artifact", Column("blob key", overflow="fold"))
        for stage_id, name, key in listed:
            artifacts.add_row(stage_id, escape(name), escape(key))
        console.print(artifacts)


def _print_logs(shown: Shown, console: Console) -> None:
    from rich.markup import escape

    stage_of_record = {s.id: s.stage_id for s in shown.stages}
    for line in shown.lines:
        text, where = log_text(line, stage_of_record.get(line.stage_record_id or ""))
        console.print(escape(text), highlight=False, soft_wrap=True)
        if where is not None:
            console.print(escape(indented(where)), highlight=False, soft_wrap=True)


def _run_times(run: RunRecord) -> str:
    """`created … started … ended …` of a run, to the millisecond."""
    times = [("created", run.created_at), ("started", run.started_at), ("ended", run.completed_at)]
    return "  ".join(
        f"{name} {at.isoformat(sep=' ', timespec='milliseconds')}" for name, at in times if at
    )
