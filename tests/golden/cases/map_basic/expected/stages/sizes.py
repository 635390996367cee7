"""Stage `sizes` (Sizes) of workflow `crawl`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import SizesOutput
from .._stages import SizesContext, SizesStage


class Sizes(SizesStage):
    """Sizes."""

    def execute(self, ctx: SizesContext) -> SizesOutput:
        raise NotImplementedError("stage `sizes`: implement execute()")
