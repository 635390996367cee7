"""Stage `split` (Split Site) of workflow `crawl`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import SplitOutput
from .._stages import SplitContext, SplitStage


class Split(SplitStage):
    """Split Site."""

    def execute(self, ctx: SplitContext) -> SplitOutput:
        raise NotImplementedError("stage `split`: implement execute()")
