"""Stage `statistics` (Reading Statistics)."""

from __future__ import annotations

from .._models import StatisticsOutput
from .._stages import StatisticsContext, StatisticsStage


class Statistics(StatisticsStage):
    """Reading Statistics: average sentence length and reading time."""

    def execute(self, ctx: StatisticsContext) -> StatisticsOutput:
        extracted = ctx.extract
        sentences = max(len(extracted.sentences), 1)
        return StatisticsOutput(
            average_sentence_words=round(extracted.word_count / sentences, 2),
            reading_minutes=round(extracted.word_count / ctx.config.words_per_minute, 2),
        )
