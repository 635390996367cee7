"""Stage `review` (Flag for Review): runs only for a clearly negative document (its `when`)."""

from __future__ import annotations

from .._models import ReviewOutput
from .._stages import ReviewContext, ReviewStage


class Review(ReviewStage):
    """Flag for Review: say why, and quote the opening, for the person who reads it."""

    def execute(self, ctx: ReviewContext) -> ReviewOutput:
        first = ctx.extract.sentences[0] if ctx.extract.sentences else ctx.extract.text
        reason = f"negative document (sentiment score {ctx.sentiment.score})"
        ctx.log("WARN", "flagged for review", score=ctx.sentiment.score)
        return ReviewOutput(reason=reason, first_sentence=first)
