"""Stage `tag_check` (Tag Check) of workflow `triage`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import TagCheckOutput
from .._stages import TagCheckContext, TagCheckStage


class TagCheck(TagCheckStage):
    """Tag Check."""

    def execute(self, ctx: TagCheckContext) -> TagCheckOutput:
        raise NotImplementedError("stage `tag_check`: implement execute()")
