"""What `wfc runs show` and `wfc runs logs` print beyond the stages table: when each stage
started and ended, when a suspended one is checked next, the progress it last reported,
its metrics and AI calls, and log lines with their fields.

The `--json` form of `runs show` carries the same values (`stage_json`), and the text
form prints every one of them (`stage_lines`): a person reading the text should not
need `--json` to find out why a stage is slow, what it spent or when it runs again.
Text that stage code wrote (log messages and fields, progress messages) is redacted
here again, as everywhere the CLI prints it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from wfc.runtime.ai_records import AIStats
    from wfc.runtime.records import LogRecord, OutboxRecord, StageRecord

Progress = dict[str, Any]
"""A stage's last `stage:progress`: `fraction` (0 to 1) and `message`."""


def last_progress(events: list[OutboxRecord]) -> dict[str, Progress]:
    """Per stage id, the progress it reported last (the run's events come oldest first)."""
    found: dict[str, Progress] = {}
    for event in events:
        if event.event_type == "stage:progress":
            payload = event.payload
            found[str(payload.get("stage_id"))] = {
                "fraction": payload.get("progress"),
                "message": payload.get("message"),
            }
    return found


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def stage_json(stage: StageRecord, stats: AIStats, progress: Progress | None) -> dict[str, Any]:
    """The timestamps, metrics, next check, progress and AI calls of a stage, for `--json`."""
    from wfc.runtime.redact import redact_data

    return {
        "started_at": _at(stage.started_at),
        "completed_at": _at(stage.completed_at),
        "next_poll_at": _at(stage.next_poll_at) if stage.status.value == "SUSPENDED" else None,
        "metrics": redact_data(stage.metrics),
        "progress": redact_data(progress),
        "ai_calls": {
            "calls": stats.total_calls,
            "input_tokens": stats.total_input_tokens,
            "output_tokens": stats.total_output_tokens,
            "cost": stats.total_cost,
            "models": sorted(stats.per_model),
        },
    }


def _clock(value: str | None) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SS.mmm` (what a person compares with a log line)."""
    return "" if value is None else value.replace("T", " ")[:23]


def stage_lines(stage_id: str, details: dict[str, Any]) -> list[str]:
    """The text lines of `stage_json`'s values that are set, each led by the stage id."""
    lines = []
    timing = [f"started {_clock(details['started_at'])}"] if details["started_at"] else []
    timing += [f"ended {_clock(details['completed_at'])}"] if details["completed_at"] else []
    if details["next_poll_at"]:
        timing.append(f"next check {_clock(details['next_poll_at'])}")
    if timing:
        lines.append("  ".join(timing))
    progress = details["progress"]
    if progress:
        fraction = progress.get("fraction")
        shown = f"{round(float(fraction) * 100)}%" if isinstance(fraction, int | float) else "?"
        lines.append(f"progress {shown} {progress.get('message') or ''}".rstrip())
    if details["metrics"]:
        lines.append(f"metrics {fields_text(details['metrics'])}")
    calls = details["ai_calls"]
    if calls["calls"]:
        lines.append(
            f"AI calls {calls['calls']} ({', '.join(calls['models'])}): "
            f"{calls['input_tokens']} tokens in, {calls['output_tokens']} out, "
            f"${calls['cost']:.4f}"
        )
    return [f"{stage_id}  {line}" for line in lines]


def fields_text(fields: dict[str, Any]) -> str:
    """`key=value …`, values as JSON (so a string with spaces stays one value)."""
    return " ".join(
        f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in fields.items()
    )


def log_text(line: LogRecord, stage_id: str | None) -> tuple[str, str | None]:
    """A log line as `time stage LEVEL message key=value…`, and its traceback apart (None
    when it has none), redacted."""
    from wfc.runtime.redact import redact, redact_data

    fields = dict(redact_data(line.fields))
    where = fields.pop("traceback", None)
    when = line.created_at.strftime("%H:%M:%S.%f")[:-3]
    text = f"{when} {stage_id or '-'} {line.level} {redact(line.message)} {fields_text(fields)}"
    return text.rstrip(), where if isinstance(where, str) else None


def indented(text: str) -> str:
    """A traceback under its log line: every line indented by four spaces."""
    return "\n".join(f"    {part}" for part in text.rstrip().splitlines())
