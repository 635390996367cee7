"""Stage `draft` (Draft Answers) of workflow `answer`.

It runs once per item of `input.tickets`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import DraftOutput
from .._stages import DraftContext, DraftStage


class Draft(DraftStage):
    """Draft Answers."""

    def execute(self, ctx: DraftContext) -> DraftOutput:
        raise NotImplementedError("stage `draft`: implement execute()")
