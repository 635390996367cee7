"""Stage `prep` (Prep) of workflow `onboarding`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import PrepOutput
from .._stages import PrepContext, PrepStage


class Prep(PrepStage):
    """Prep."""

    def execute(self, ctx: PrepContext) -> PrepOutput:
        raise NotImplementedError("stage `prep`: implement execute()")
