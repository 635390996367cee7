"""A delivered `job.execute`'s output, stored with its stage and not again under its key.

A job that arrives as a queue message (`ServerlessHost.handle_job`) runs under an
idempotency key, so that a repeated delivery replays the first one's result instead of
running the stage again. The key used to store the whole result, its `output` too: a
stage's output can be megabytes, and each delivered stage wrote it twice in its outcome's
transaction (its blob and the key's row) and serialized it once more. The key now stores
the result without it (`KeyCompletion.stored_apart`), and a replay reads it back from
where the outcome stored it: the stage's blob, or the item's row for an item of a
mapped stage. A host's replay reads only the outcome (`hosts.steps.process_job`); a
caller that dispatched `job.execute` itself gets the output it got the first time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfc.runtime.commands import JobExecute, JobExecuteResult
from wfc.runtime.kernel.deps import Deps
from wfc.runtime.kernel.rows import load_outputs

OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class OutputReadBack:
    """Puts a delivered stage's output back into its replayed result."""

    deps: Deps
    cmd: JobExecute

    async def __call__(
        self, stored: Mapping[str, Any], result: JobExecuteResult
    ) -> JobExecuteResult:
        """`result`, validated from `stored`, with the output the first call returned, when
        the stored result left one out."""
        if OUTPUT in stored:  # stored whole: it had none (or was stored before this)
            return result
        return result.model_copy(update={OUTPUT: await self._output()})

    async def _output(self) -> Any:
        cmd, persistence = self.cmd, self.deps.persistence
        if cmd.item is not None:
            items = await persistence.items_of_stage(cmd.workflow_run_id, cmd.stage_id)
            return next((item.output for item in items if item.item_index == cmd.item), None)
        row = await persistence.get_stage(cmd.workflow_run_id, cmd.stage_id)
        if row is None:
            return None
        return (await load_outputs(self.deps, [row])).get(cmd.stage_id)
