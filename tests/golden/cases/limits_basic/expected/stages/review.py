"""Stage `review` (Review) of workflow `answer`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import ReviewOutput
from .._stages import ReviewContext, ReviewStage


class Review(ReviewStage):
    """Review."""

    def execute(self, ctx: ReviewContext) -> ReviewOutput:
        raise NotImplementedError("stage `review`: implement execute()")
