"""Stage `keywords` (Find Keywords): the most frequent content words."""

from __future__ import annotations

import re
from collections import Counter

from .._models import Keyword, KeywordsOutput
from .._stages import KeywordsContext, KeywordsStage

STOPWORDS = frozenset(
    """a an and are as at be but by for from has have in is it its of on or that the this
    to was were will with we you they he she not no so than then there these those which""".split()
)


class Keywords(KeywordsStage):
    """Find Keywords by term frequency, ignoring stopwords and very short words."""

    def execute(self, ctx: KeywordsContext) -> KeywordsOutput:
        words = [
            w
            for w in re.findall(r"[a-z][a-z'-]+", ctx.extract.text.lower())
            if w not in STOPWORDS and len(w) > 2
        ]
        counts = Counter(words)
        total = max(len(words), 1)
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: ctx.config.top]
        return KeywordsOutput(
            keywords=[Keyword(term=term, score=round(n / total, 4)) for term, n in top]
        )
