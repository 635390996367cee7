"""Stage `extract` (Extract Text) of workflow `document_processor`.

Normalises whitespace, truncates to `max_length` and splits into sentences.
"""

from __future__ import annotations

import re

from .._models import ExtractOutput
from .._stages import ExtractContext, ExtractStage

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Extract(ExtractStage):
    """Extract Text."""

    def execute(self, ctx: ExtractContext) -> ExtractOutput:
        text = " ".join(ctx.input.document.split())[: ctx.config.max_length]
        if ctx.input.title:
            text = f"{ctx.input.title.strip()}. {text}"
        sentences = [s for s in _SENTENCE_END.split(text) if s]
        ctx.log("INFO", "extracted text", sentences=len(sentences))
        return ExtractOutput(text=text, sentences=sentences, word_count=len(text.split()))
