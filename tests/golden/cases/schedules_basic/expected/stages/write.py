"""Stage `write` (Write) of workflow `report`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import WriteOutput
from .._stages import WriteContext, WriteStage


class Write(WriteStage):
    """Write."""

    def execute(self, ctx: WriteContext) -> WriteOutput:
        raise NotImplementedError("stage `write`: implement execute()")
