"""Stage `draft` (Draft) of workflow `publishing`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import DraftOutput
from .._stages import DraftContext, DraftStage


class Draft(DraftStage):
    """Draft."""

    def execute(self, ctx: DraftContext) -> DraftOutput:
        raise NotImplementedError("stage `draft`: implement execute()")
