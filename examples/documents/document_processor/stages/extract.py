"""Stage `extract` (Extract Text) of workflow `document_processor`.

Normalises whitespace, truncates to `max_length`, splits into sentences and groups
them into chunks of `chunk_sentences` (what `score_chunks` maps over).
"""

from __future__ import annotations

import re

from .._models import Chunk, ExtractOutput
from .._stages import ExtractContext, ExtractStage

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Extract(ExtractStage):
    """Extract Text."""

    def execute(self, ctx: ExtractContext) -> ExtractOutput:
        text = " ".join(ctx.input.document.split())[: ctx.config.max_length]
        if ctx.input.title:
            text = f"{ctx.input.title.strip()}. {text}"
        sentences = [s for s in _SENTENCE_END.split(text) if s]
        size = ctx.config.chunk_sentences
        chunks = [
            Chunk(first_sentence=start, text=" ".join(sentences[start : start + size]))
            for start in range(0, len(sentences), size)
        ]
        ctx.log("INFO", "extracted text", sentences=len(sentences), chunks=len(chunks))
        return ExtractOutput(
            text=text, sentences=sentences, chunks=chunks, word_count=len(text.split())
        )
