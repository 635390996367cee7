"""Stage `review` (Human Review) of workflow `triage`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import ReviewOutput
from .._stages import ReviewContext, ReviewStage


class Review(ReviewStage):
    """Human Review."""

    def execute(self, ctx: ReviewContext) -> ReviewOutput:
        raise NotImplementedError("stage `review`: implement execute()")
