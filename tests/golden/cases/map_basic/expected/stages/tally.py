"""Stage `tally` (Tally) of workflow `crawl`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import TallyOutput
from .._stages import TallyContext, TallyStage


class Tally(TallyStage):
    """Tally."""

    def execute(self, ctx: TallyContext) -> TallyOutput:
        raise NotImplementedError("stage `tally`: implement execute()")
