"""Stage `score_chunks` (Score Each Chunk): runs once per chunk of `extract.chunks`.

Each chunk is its own job: a worker that dies mid-document loses one chunk,
which runs again, not the whole document. `ctx.item` is the chunk and
`ctx.item_index` its position. A small lexicon scorer, offline and
deterministic (swap in `ctx.ai` for a model).
"""

from __future__ import annotations

import re

from .._models import ScoreChunksOutput
from .._stages import ScoreChunksContext, ScoreChunksStage

POSITIVE = frozenset(
    "good great excellent happy love like best improve improved success clear fast reliable".split()
)
NEGATIVE = frozenset(
    "bad poor terrible sad hate worst fail failed failure slow broken error risk problem".split()
)


class ScoreChunks(ScoreChunksStage):
    """Score Each Chunk: (positive - negative) / (positive + negative) lexicon hits."""

    def execute(self, ctx: ScoreChunksContext) -> ScoreChunksOutput:
        words = re.findall(r"[a-z']+", ctx.item.text.lower())
        pos = sum(w in POSITIVE for w in words)
        neg = sum(w in NEGATIVE for w in words)
        score = 0.0 if pos + neg == 0 else (pos - neg) / (pos + neg)
        return ScoreChunksOutput(score=round(score, 4), hits=pos + neg)
