"""Stage `classify` (Classify Page) of workflow `crawl`.

It runs once per item of `split.pages`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import ClassifyOutput
from .._stages import ClassifyContext, ClassifyStage


class Classify(ClassifyStage):
    """Classify Page."""

    def execute(self, ctx: ClassifyContext) -> ClassifyOutput:
        raise NotImplementedError("stage `classify`: implement execute()")
