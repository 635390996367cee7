"""Stage `check_seed` (Check Seed) of workflow `crawl`.

It runs once per item of `input.seeds`: `execute` reads its item as `ctx.item`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import CheckSeedOutput
from .._stages import CheckSeedContext, CheckSeedStage


class CheckSeed(CheckSeedStage):
    """Check Seed."""

    def execute(self, ctx: CheckSeedContext) -> CheckSeedOutput:
        raise NotImplementedError("stage `check_seed`: implement execute()")
