"""Stage `report` (Report) of workflow `onboarding`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import ReportOutput
from .._stages import ReportContext, ReportStage


class Report(ReportStage):
    """Report."""

    def execute(self, ctx: ReportContext) -> ReportOutput:
        raise NotImplementedError("stage `report`: implement execute()")
