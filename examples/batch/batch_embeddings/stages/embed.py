"""Stage `embed` (Embed in a Batch): submit, suspend, and collect when the batch is done.

The batch "service" is offline: `execute` writes the request to the blob store
under a batch id and suspends; `check_completion` reports not-ready until it has
been polled `polls_until_ready` times, then computes feature-hashing embeddings
(signed, L2-normalised) for the stored texts. A real provider batch has the
same shape: submit → `Suspend(state={batch id})` → poll → results.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import timedelta
from typing import Any

from wfc.runtime import Completion, NotReady, Ready, Suspend

from .._models import EmbedOutput
from .._stages import EmbedCheckContext, EmbedContext, EmbedStage


def hash_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic bag-of-words embedding: each word adds ±1 to a hashed bucket."""
    vector = [0.0] * dimensions
    for word in text.split():
        digest = hashlib.sha256(word.encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dimensions
        vector[bucket] += 1.0 if digest[4] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


class Embed(EmbedStage):
    """Embed in a Batch."""

    async def execute(self, ctx: EmbedContext) -> EmbedOutput | Suspend:
        request = {"texts": ctx.input.texts, "dimensions": ctx.input.dimensions}
        body = json.dumps(request, sort_keys=True).encode()
        batch_id = "batch-" + hashlib.sha256(body).hexdigest()[:16]
        await ctx.blobs.put(f"batches/{batch_id}/request.json", body)
        ctx.log("INFO", "batch submitted", batch_id=batch_id, texts=len(ctx.input.texts))
        return Suspend(
            state={"batch_id": batch_id, "polls": 0},
            poll_interval=timedelta(seconds=ctx.config.check_every_seconds),
        )

    async def check_completion(
        self, state: dict[str, Any], ctx: EmbedCheckContext
    ) -> Completion[EmbedOutput]:
        polls = int(state.get("polls", 0)) + 1
        state["polls"] = polls
        if polls <= ctx.config.polls_until_ready:
            # How far the batch is, as a provider's status would say: a `stage:progress`
            # event stored with this poll's "not yet", shown live by `wfc run`.
            done = polls / (ctx.config.polls_until_ready + 1)
            ctx.progress(done, "batch running", details={"polls": polls})
            return NotReady(next_check_in=timedelta(seconds=ctx.config.check_every_seconds))
        raw = await ctx.blobs.get(f"batches/{state['batch_id']}/request.json")
        request = json.loads(raw)
        dims = int(request["dimensions"])
        vectors = [hash_embedding(text, dims) for text in request["texts"]]
        return Ready(output=EmbedOutput(vectors=vectors, dimensions=dims))
