"""An age that reaches before year 1 prunes nothing (no run finished that long ago).

`prune_finished_runs` computed `now - older_than` first, which raised `OverflowError`
("date value out of range") for such an age; `wfc worker --retain 999999999d` logged
"database unavailable" at every tick because of it. The CLI now refuses ages over a
century, but a caller of the Python API could still pass one.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.kernel.retention import prune_finished_runs
from wfc.testing import make_test_kernel


class Text(BaseModel):
    text: str


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


async def test_an_age_within_reach_still_prunes_what_finished_before_it() -> None:
    tk = make_test_kernel(
        WorkflowBuilder("near", "Near", input=Text)
        .pipe(define_stage(id="copy", input=Text, output=Text, execute=lambda ctx: ctx.input))
        .build()
    )
    run = await tk.run("near", {"text": "gone"})
    assert run.status.value == "COMPLETED", run.error
    tk.clock.advance(days=2)
    pruned = await prune_finished_runs(tk.kernel.deps, timedelta(days=1))
    assert pruned.runs == 1
