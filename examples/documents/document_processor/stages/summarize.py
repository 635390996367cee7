"""Stage `summarize` (Summarize): the leading sentences plus what the analyses found."""

from __future__ import annotations

from .._models import SummarizeOutput
from .._stages import SummarizeContext, SummarizeStage


class Summarize(SummarizeStage):
    """Summarize: fan-in of extract, sentiment, keywords and statistics, and of the review
    when the document was flagged (`ctx.review` is None when that stage was skipped)."""

    def execute(self, ctx: SummarizeContext) -> SummarizeOutput:
        lead = " ".join(ctx.extract.sentences[: ctx.config.sentences])
        terms = ", ".join(k.term for k in ctx.keywords.keywords)
        minutes = ctx.statistics.reading_minutes
        summary = f"{lead} [{ctx.sentiment.sentiment}; {minutes} min read; topics: {terms}]"
        if ctx.review is not None:  # flagged: the review stage ran
            summary += f" (flagged for review: {ctx.review.reason})"
        ctx.progress(1.0, "summary written")
        return SummarizeOutput(
            summary=summary,
            sentiment=ctx.sentiment.sentiment,
            keywords=ctx.keywords.keywords,
        )
