"""Stage `sentiment` (Score Sentiment): the chunks' scores, weighted by their lexicon hits."""

from __future__ import annotations

from .._models import Sentiment as Label
from .._models import SentimentOutput
from .._stages import SentimentContext, SentimentStage


class Sentiment(SentimentStage):
    """Score Sentiment: the hit-weighted mean of the chunk scores (`ctx.score_chunks` is a
    list, one output per chunk in document order)."""

    def execute(self, ctx: SentimentContext) -> SentimentOutput:
        chunks = ctx.score_chunks
        hits = sum(chunk.hits for chunk in chunks)
        score = 0.0 if hits == 0 else sum(c.score * c.hits for c in chunks) / hits
        if score > 0.1:
            label = Label.positive
        elif score < -0.1:
            label = Label.negative
        else:
            label = Label.neutral
        return SentimentOutput(sentiment=label, score=round(score, 4))
