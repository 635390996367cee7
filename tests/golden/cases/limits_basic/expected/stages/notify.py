"""Stage `notify` (Notify) of workflow `answer`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import NotifyOutput
from .._stages import NotifyContext, NotifyStage


class Notify(NotifyStage):
    """Notify."""

    def execute(self, ctx: NotifyContext) -> NotifyOutput:
        raise NotImplementedError("stage `notify`: implement execute()")
