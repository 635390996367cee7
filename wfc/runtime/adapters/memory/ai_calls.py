"""`AICallLogger` in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from wfc.runtime.ai_records import AICallRecord, AIStats, ModelUsage


def topic_matches(topic: str, prefix: str) -> bool:
    """Whether `topic` is `prefix` or lies under it by whole dot-separated segments."""
    return not prefix or topic == prefix or topic.startswith(prefix.rstrip(".") + ".")


def aggregate(calls: Sequence[AICallRecord]) -> AIStats:
    """Totals and per-model sums of `calls`."""
    per_model: dict[str, ModelUsage] = {}
    for call in calls:
        usage = per_model.get(call.model_key, ModelUsage())
        per_model[call.model_key] = ModelUsage(
            calls=usage.calls + 1,
            input_tokens=usage.input_tokens + call.input_tokens,
            output_tokens=usage.output_tokens + call.output_tokens,
            cost=usage.cost + call.cost,
        )
    return AIStats(
        total_calls=len(calls),
        total_input_tokens=sum(c.input_tokens for c in calls),
        total_output_tokens=sum(c.output_tokens for c in calls),
        total_cost=sum(c.cost for c in calls),
        per_model=per_model,
    )


class MemoryAICallLogger:
    """The model-call ledger in a list."""

    def __init__(self) -> None:
        self.calls: list[AICallRecord] = []

    async def log_call(self, call: AICallRecord) -> None:
        self.calls.append(call)

    async def log_batch_results(self, batch_id: str, calls: Sequence[AICallRecord]) -> bool:
        if await self.is_recorded(batch_id):
            return False
        self.calls.extend(replace(c, metadata={**c.metadata, "batch_id": batch_id}) for c in calls)
        return True

    async def is_recorded(self, batch_id: str) -> bool:
        return any(c.metadata.get("batch_id") == batch_id for c in self.calls)

    async def stats(self, topic_prefix: str) -> AIStats:
        return aggregate([c for c in self.calls if topic_matches(c.topic, topic_prefix)])
