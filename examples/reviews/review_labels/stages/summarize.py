"""Stage `summarize` (Summarize): count the labels and have a model write one sentence."""

from __future__ import annotations

from .._models import SummarizeOutput
from .._stages import SummarizeContext, SummarizeStage


class Summarize(SummarizeStage):
    """Summarize."""

    async def execute(self, ctx: SummarizeContext) -> SummarizeOutput:
        labels = ctx.input.labels
        counts = {name: labels.count(name) for name in ("positive", "negative", "neutral")}
        reply = await ctx.ai.generate_text(
            ctx.config.model,
            f"In one sentence, summarise reviews with these sentiment counts: {counts}",
            temperature=ctx.config.temperature,
            max_tokens=ctx.config.max_tokens,
        )
        ctx.progress(1.0, "summary written")
        return SummarizeOutput(summary=reply.text, **counts)
