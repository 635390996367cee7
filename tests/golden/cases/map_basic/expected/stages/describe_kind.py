"""Stage `describe_kind` (Describe Kind) of workflow `crawl`.

It runs once per item of `input.kinds`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import DescribeKindOutput
from .._stages import DescribeKindContext, DescribeKindStage


class DescribeKind(DescribeKindStage):
    """Describe Kind."""

    def execute(self, ctx: DescribeKindContext) -> DescribeKindOutput:
        raise NotImplementedError("stage `describe_kind`: implement execute()")
