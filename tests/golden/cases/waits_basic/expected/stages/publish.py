"""Stage `publish` (Publish) of workflow `publishing`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import PublishOutput
from .._stages import PublishContext, PublishStage


class Publish(PublishStage):
    """Publish."""

    def execute(self, ctx: PublishContext) -> PublishOutput:
        raise NotImplementedError("stage `publish`: implement execute()")
