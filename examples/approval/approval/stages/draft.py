"""Stage `draft` (Draft Post) of workflow `approval`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

import re

from .._models import DraftOutput
from .._stages import DraftContext, DraftStage


class Draft(DraftStage):
    """Draft Post: a URL slug from the title and a one-line preview for the editor."""

    def execute(self, ctx: DraftContext) -> DraftOutput:
        slug = re.sub(r"[^a-z0-9]+", "-", ctx.input.title.lower()).strip("-") or "post"
        words = ctx.input.text.split()
        preview = " ".join(words[:20]) + (" …" if len(words) > 20 else "")
        return DraftOutput(slug=slug, preview=preview)
