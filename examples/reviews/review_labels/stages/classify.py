"""Stage `classify` (Classify in a Batch): one batch request per review, then wait for it.

`execute` submits the batch and suspends with its id; the runtime calls
`check_completion` every `check_every_seconds` until the batch is done. The
results' tokens are recorded in the ledger once (at the batch discount), so
the run's cost shows what the batch really cost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel
from wfc.runtime import Completion, Failed, NotReady, Ready, Suspend
from wfc.runtime.ai import BatchRequest

from .._models import ClassifyOutput
from .._stages import ClassifyCheckContext, ClassifyContext, ClassifyStage


class Verdict(BaseModel):
    """What each batch request must answer."""

    label: Literal["positive", "negative", "neutral"]


def request_id(index: int) -> str:
    return f"review-{index}"


class Classify(ClassifyStage):
    """Classify in a Batch."""

    async def execute(self, ctx: ClassifyContext) -> ClassifyOutput | Suspend:
        requests = [
            BatchRequest(
                id=request_id(i),
                prompt=f"Label the sentiment of this review: {review}",
                schema=Verdict,
            )
            for i, review in enumerate(ctx.input.reviews)
        ]
        submitted = await ctx.ai.batch(ctx.config.model).submit(requests)
        ctx.log("INFO", "batch submitted", batch_id=submitted.id, requests=len(requests))
        return Suspend(
            state={"batch_id": submitted.id, "count": len(requests)},
            poll_interval=timedelta(seconds=ctx.config.check_every_seconds),
        )

    async def check_completion(
        self, state: dict[str, Any], ctx: ClassifyCheckContext
    ) -> Completion[ClassifyOutput]:
        batch = ctx.ai.batch(ctx.config.model)
        status = await batch.status(state["batch_id"])
        if not status.finished:
            return NotReady(next_check_in=timedelta(seconds=ctx.config.check_every_seconds))
        if status.state != "completed":
            return Failed(error=f"batch {status.id} {status.state}: {status.error or 'no detail'}")
        ids = [request_id(i) for i in range(int(state["count"]))]
        results = {
            r.request_id: r
            for r in await batch.results(status.id, schemas=dict.fromkeys(ids, Verdict))
        }
        labels = [
            r.result.label
            if (r := results.get(i)) and r.status == "succeeded" and isinstance(r.result, Verdict)
            else "neutral"
            for i in ids
        ]
        return Ready(output=ClassifyOutput(labels=labels))
