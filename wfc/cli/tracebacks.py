"""The traceback of a failed stage, as `wfc runs show` prints it.

When stage code raises, the kernel keeps the formatted traceback (redacted, its
last few thousand characters) on the ERROR log line it writes for the failed
attempt. `runs show` reads those lines only for a run with a stage that has an
error, and shows the last one per stage: where the code raised, not just what. A
mapped stage's items log theirs on the stage's row, with the item's index: the last
one is the stage's (the item that failed it), and `--items` prints each item's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfc.runtime.ports import Persistence
    from wfc.runtime.records import LogRecord, StageRecord


async def last_tracebacks(
    db: Persistence, run_id: str, stages: Sequence[StageRecord], lines: Sequence[LogRecord]
) -> dict[str, str]:
    """Per stage id with an error, the traceback of its last failed attempt (when its code
    raised); `lines`: the run's log lines if already read."""
    failed = {stage.id: stage.stage_id for stage in stages if stage.error}
    if not failed:
        return {}
    found: dict[str, str] = {}
    for line in lines or await db.logs_of_run(run_id):
        where = line.fields.get("traceback") if line.level == "ERROR" else None
        if isinstance(where, str) and line.stage_record_id in failed:
            found[failed[line.stage_record_id]] = where  # logs come oldest first
    return found


def item_tracebacks(lines: Sequence[LogRecord], stage_record_id: str) -> dict[int, str]:
    """Per item index of one mapped stage's row, the traceback of its last failed attempt
    whose code raised (items log on their stage's row, with the `item` field)."""
    found: dict[int, str] = {}
    for line in lines:
        where, index = line.fields.get("traceback"), line.fields.get("item")
        if line.stage_record_id == stage_record_id and isinstance(where, str):
            if isinstance(index, int):
                found[index] = where
    return found
