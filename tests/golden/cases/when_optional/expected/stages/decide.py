"""Stage `decide` (Decide) of workflow `triage`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import DecideOutput
from .._stages import DecideContext, DecideStage


class Decide(DecideStage):
    """Decide."""

    def execute(self, ctx: DecideContext) -> DecideOutput:
        raise NotImplementedError("stage `decide`: implement execute()")
