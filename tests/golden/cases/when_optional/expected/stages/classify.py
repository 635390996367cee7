"""Stage `classify` (Classify) of workflow `triage`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import ClassifyOutput
from .._stages import ClassifyContext, ClassifyStage


class Classify(ClassifyStage):
    """Classify."""

    def execute(self, ctx: ClassifyContext) -> ClassifyOutput:
        raise NotImplementedError("stage `classify`: implement execute()")
