"""Stage `prepare` (Prepare Texts): trims, optionally lowercases, and drops empty texts."""

from __future__ import annotations

from .._models import PrepareOutput
from .._stages import PrepareContext, PrepareStage


class Prepare(PrepareStage):
    """Prepare Texts."""

    def execute(self, ctx: PrepareContext) -> PrepareOutput:
        texts = [" ".join(t.split()) for t in ctx.input.texts]
        if ctx.config.lowercase:
            texts = [t.lower() for t in texts]
        return PrepareOutput(texts=[t for t in texts if t], dimensions=ctx.input.dimensions)
