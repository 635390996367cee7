"""Stage `summarize` (Summarize) of workflow `crawl`.

It runs once per item of `split.pages`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import SummarizeOutput
from .._stages import SummarizeContext, SummarizeStage


class Summarize(SummarizeStage):
    """Summarize."""

    def execute(self, ctx: SummarizeContext) -> SummarizeOutput:
        raise NotImplementedError("stage `summarize`: implement execute()")
