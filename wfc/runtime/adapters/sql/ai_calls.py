"""`AICallLogger` on SQL: the model-call ledger, aggregated by topic in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.schema import ai_calls
from wfc.runtime.ai_records import AICallRecord, AIStats, ModelUsage

_a = ai_calls.c


def _row(call: AICallRecord, batch_id: str | None = None) -> dict[str, Any]:
    metadata = dict(call.metadata)
    if batch_id is not None:
        metadata["batch_id"] = batch_id
    return {
        "id": call.id,
        "topic": call.topic,
        "call_type": call.call_type,
        "model_key": call.model_key,
        "model_id": call.model_id,
        "prompt": call.prompt,
        "response": call.response,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cost": call.cost,
        "created_at": call.created_at,
        "metadata": metadata,
        "batch_id": metadata.get("batch_id"),
    }


class SqlAICallLogger:
    """Model calls as rows of `ai_calls`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connections = Connections(engine)

    async def log_call(self, call: AICallRecord) -> None:
        async with self._connections.single() as conn:
            await conn.execute(insert(ai_calls).values(**_row(call)))

    async def log_batch_results(self, batch_id: str, calls: Sequence[AICallRecord]) -> bool:
        async with self._connections.transaction() as conn:
            seen = await conn.execute(select(_a.id).where(_a.batch_id == batch_id).limit(1))
            if seen.first() is not None:
                return False
            if calls:
                await conn.execute(insert(ai_calls), [_row(c, batch_id) for c in calls])
        return True

    async def is_recorded(self, batch_id: str) -> bool:
        async with self._connections.single() as conn:
            seen = await conn.execute(select(_a.id).where(_a.batch_id == batch_id).limit(1))
            return seen.first() is not None

    async def stats(self, topic_prefix: str) -> AIStats:
        statement = select(
            _a.model_key,
            func.count(),
            func.coalesce(func.sum(_a.input_tokens), 0),
            func.coalesce(func.sum(_a.output_tokens), 0),
            func.coalesce(func.sum(_a.cost), 0.0),
        ).group_by(_a.model_key)
        prefix = topic_prefix.rstrip(".")
        if prefix:
            statement = statement.where(
                or_(_a.topic == prefix, _a.topic.startswith(prefix + ".", autoescape=True))
            )
        async with self._connections.single() as conn:
            rows = (await conn.execute(statement)).all()
        per_model = {
            str(key): ModelUsage(
                calls=int(n), input_tokens=int(i), output_tokens=int(o), cost=float(c)
            )
            for key, n, i, o, c in rows
        }
        return AIStats(
            total_calls=sum(u.calls for u in per_model.values()),
            total_input_tokens=sum(u.input_tokens for u in per_model.values()),
            total_output_tokens=sum(u.output_tokens for u in per_model.values()),
            total_cost=sum(u.cost for u in per_model.values()),
            per_model=per_model,
        )
