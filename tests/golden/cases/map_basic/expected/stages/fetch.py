"""Stage `fetch` (Fetch) of workflow `crawl`.

It runs once per item of `split.links`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from typing import Any

from wfc.runtime import Completion, Suspend

from .._models import Size
from .._stages import FetchCheckContext, FetchContext, FetchStage


class Fetch(FetchStage):
    """Fetch."""

    def execute(self, ctx: FetchContext) -> Size | Suspend:
        raise NotImplementedError("stage `fetch`: implement execute()")

    def check_completion(
        self, state: dict[str, Any], ctx: FetchCheckContext
    ) -> Completion[Size]:
        raise NotImplementedError("stage `fetch`: implement check_completion()")
