"""Stage `sentiment` (Score Sentiment): a small lexicon scorer, offline and deterministic."""

from __future__ import annotations

import re

from .._models import Sentiment as Label
from .._models import SentimentOutput
from .._stages import SentimentContext, SentimentStage

POSITIVE = frozenset(
    "good great excellent happy love like best improve improved success clear fast reliable".split()
)
NEGATIVE = frozenset(
    "bad poor terrible sad hate worst fail failed failure slow broken error risk problem".split()
)


class Sentiment(SentimentStage):
    """Score Sentiment: (positive - negative) / (positive + negative) lexicon hits."""

    def execute(self, ctx: SentimentContext) -> SentimentOutput:
        words = re.findall(r"[a-z']+", ctx.extract.text.lower())
        pos = sum(w in POSITIVE for w in words)
        neg = sum(w in NEGATIVE for w in words)
        score = 0.0 if pos + neg == 0 else (pos - neg) / (pos + neg)
        if score > 0.1:
            label = Label.positive
        elif score < -0.1:
            label = Label.negative
        else:
            label = Label.neutral
        return SentimentOutput(sentiment=label, score=round(score, 4))
