"""The memory `AICallLogger`: stats by whole topic segments, batches recorded once."""

from __future__ import annotations

from datetime import UTC, datetime

from wfc.runtime.ai_records import AICallRecord
from wfc.testing import MemoryAICallLogger


def call(topic: str, model: str = "m", tokens: int = 10, cost: float = 0.5) -> AICallRecord:
    return AICallRecord(
        id=topic + model,
        topic=topic,
        call_type="text",
        model_key=model,
        model_id=model,
        prompt="p",
        response="r",
        input_tokens=tokens,
        output_tokens=1,
        cost=cost,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


async def test_stats_match_whole_topic_segments() -> None:
    ledger = MemoryAICallLogger()
    for topic in ("workflow.ab.stage.x", "workflow.ab.stage.y", "workflow.abc.stage.x"):
        await ledger.log_call(call(topic))
    await ledger.log_call(call("workflow.ab.stage.x", model="big", tokens=100, cost=2.0))
    stats = await ledger.stats("workflow.ab")
    assert (stats.total_calls, stats.total_input_tokens, stats.total_cost) == (3, 120, 3.0)
    assert {k: v.calls for k, v in stats.per_model.items()} == {"m": 2, "big": 1}
    assert (await ledger.stats("workflow.ab.stage.x")).total_calls == 2
    assert (await ledger.stats("nothing")).total_calls == 0
    assert (await ledger.stats("")).total_calls == 4


async def test_batch_results_are_recorded_once() -> None:
    ledger = MemoryAICallLogger()
    assert await ledger.log_batch_results("b1", [call("t"), call("u")])
    assert not await ledger.log_batch_results("b1", [call("t")])
    assert await ledger.is_recorded("b1") and not await ledger.is_recorded("b2")
    assert [c.metadata for c in ledger.calls] == [{"batch_id": "b1"}] * 2
