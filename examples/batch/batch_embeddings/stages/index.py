"""Stage `index` (Nearest Neighbours): for each text, the most similar other text."""

from __future__ import annotations

from .._models import IndexOutput
from .._stages import IndexContext, IndexStage


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


class Index(IndexStage):
    """Nearest Neighbours by cosine similarity."""

    def execute(self, ctx: IndexContext) -> IndexOutput:
        texts, vectors = ctx.prepare.texts, ctx.embed.vectors
        nearest: dict[str, str] = {}
        for i, text in enumerate(texts):
            others = [
                (cosine(vectors[i], vectors[j]), texts[j]) for j in range(len(texts)) if j != i
            ]
            if others:
                nearest[text] = max(others)[1]
        return IndexOutput(count=len(texts), dimensions=ctx.embed.dimensions, nearest=nearest)
