"""Runtime defect found by the CLI audit (wfc/runtime is not this audit's to change).

`prune_finished_runs(deps, older_than)` computes `now - older_than` before anything else;
an age that reaches before year 1 raises `OverflowError` ("date value out of range")
instead of pruning nothing, since no run finished that long ago. `wfc runs prune
--older-than` and `wfc worker --retain` now refuse such ages (a century at most), so no
user reaches it from the CLI; `wfc worker --retain 999999999d` used to log "database
unavailable" every tick because of it. A caller of the Python API still can.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.kernel.retention import prune_finished_runs
from wfc.testing import make_test_kernel


class Text(BaseModel):
    text: str


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="runtime: prune_finished_runs overflows on a cutoff before year 1",
)
async def test_an_age_before_any_date_prunes_nothing() -> None:
    wf = (
        WorkflowBuilder("far", "Far", input=Text)
        .pipe(define_stage(id="copy", input=Text, output=Text, execute=lambda ctx: ctx.input))
        .build()
    )
    tk = make_test_kernel(wf)
    run = await tk.run("far", {"text": "kept"})
    assert run.status.value == "COMPLETED", run.error
    pruned = await prune_finished_runs(tk.kernel.deps, timedelta(days=999_999_999))
    assert pruned.runs == 0
