"""Provider batch APIs: submit many prompts at once, poll, fetch results, pay less (spec §10.5).

Made for async stages: `execute` submits and returns
`Suspend(state={"batch_id": …, "request_ids": […]})`; `check_completion`
asks `status` and, once completed, `results`, which records each result's
usage in the ledger exactly once per batch id (a re-poll or a retried stage
does not count the money twice).

This module is what a stage holds (`AIBatch`: a provider bound to a helper's
topic and ledger) and how a raw result becomes a `BatchResult`; the providers
themselves, one per API over its official SDK, are in
`wfc.runtime.ai.batch_providers`, whose names this module still exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from wfc.errors import WfcError
from wfc.observability import observer
from wfc.runtime.ai.batch_providers import (
    FINISHED,
    AnthropicBatches,
    BatchProvider,
    BatchRequest,
    BatchState,
    BatchStatus,
    GoogleBatches,
    OfflineBatches,
    OpenAIBatches,
    RawResult,
    batch_provider,
    infer_provider,
)
from wfc.runtime.ai.models import ModelConfig, call_cost
from wfc.runtime.ai_records import AICallRecord
from wfc.runtime.ports import AICallLogger

__all__ = [
    "FINISHED",
    "AIBatch",
    "AnthropicBatches",
    "BatchLedger",
    "BatchProvider",
    "BatchRequest",
    "BatchResult",
    "BatchState",
    "BatchStatus",
    "GoogleBatches",
    "OfflineBatches",
    "OpenAIBatches",
    "RawResult",
    "batch_provider",
    "infer_provider",
    "parse_result",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """One request's outcome: `succeeded` with `result`, or `failed` with `error`."""

    request_id: str
    status: Literal["succeeded", "failed"]
    result: Any = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_result(raw: RawResult, schema: type[BaseModel] | None) -> BatchResult:
    """JSON (code fences stripped) validated by `schema` if one is known; else JSON or text."""

    def outcome(result: Any = None, error: str | None = None) -> BatchResult:
        return BatchResult(
            request_id=raw.request_id,
            status="failed" if error is not None else "succeeded",
            result=result,
            error=error,
            input_tokens=raw.input_tokens,
            output_tokens=raw.output_tokens,
        )

    if raw.error is not None or raw.text is None:
        return outcome(error=raw.error or "no output")
    fenced = _FENCE.match(raw.text)
    try:
        value: Any = json.loads(fenced.group(1) if fenced else raw.text)
    except json.JSONDecodeError:
        return outcome(error="not JSON") if schema is not None else outcome(result=raw.text)
    if schema is None:
        return outcome(result=value)
    try:
        return outcome(result=schema.model_validate(value))
    except ValidationError as error:
        return outcome(error=str(error))


class BatchLedger(Protocol):
    """What a batch needs of the `AIHelper` that made it: its ledger, and entries under its topic.

    Named here, not taken as `AIHelper`, because the helper module imports this
    one to make batches; a batch only records what its results cost.
    """

    @property
    def logger(self) -> AICallLogger:
        """The ledger the helper writes to."""
        ...

    def call_record(
        self,
        config: ModelConfig,
        call_type: Literal["batch"],
        prompt: str,
        response: str,
        input_tokens: int,
        output_tokens: int,
        metadata: dict[str, Any] | None = None,
    ) -> AICallRecord:
        """A ledger entry for one call under the helper's topic, batch discount applied."""
        ...


@dataclass
class AIBatch:
    """A model's batch API bound to a helper's topic and ledger."""

    helper: BatchLedger
    model: ModelConfig
    provider: BatchProvider
    _schemas: dict[str, type[BaseModel]] = field(default_factory=dict)

    async def submit(self, requests: Sequence[BatchRequest]) -> BatchStatus:
        """Send the batch; keep its id (and the request ids) in the stage's suspend state."""
        if not requests:
            raise WfcError("a batch needs at least one request")
        batch_id = await self.provider.submit(self.model, requests)
        self._schemas.update({r.id: r.schema for r in requests if r.schema is not None})
        return BatchStatus(id=batch_id, provider=self.provider.name, state="pending")

    async def status(self, batch_id: str) -> BatchStatus:
        return await self.provider.status(batch_id)

    async def results(
        self, batch_id: str, schemas: Mapping[str, type[BaseModel]] | None = None
    ) -> list[BatchResult]:
        """Parsed results, recorded in the ledger once per batch (with the batch discount).

        `schemas` by request id validates results in a later process (the ones
        given at `submit` are remembered in this one).
        """
        known = {**self._schemas, **(schemas or {})}
        parsed = [
            parse_result(raw, known.get(raw.request_id))
            for raw in await self.provider.results(batch_id)
        ]
        await self.record_results(batch_id, parsed)
        return parsed

    async def is_recorded(self, batch_id: str) -> bool:
        return await self.helper.logger.is_recorded(batch_id)

    async def record_results(self, batch_id: str, results: Sequence[BatchResult]) -> bool:
        """Log each result's usage once; False (nothing written) if this batch was recorded."""
        if await self.is_recorded(batch_id):
            return False
        calls = [
            self.helper.call_record(
                self.model,
                "batch",
                f"[batch {batch_id} request {r.request_id}]",
                json.dumps(_jsonable(r.result)) if r.status == "succeeded" else "",
                r.input_tokens,
                r.output_tokens,
                {
                    "batch_id": batch_id,
                    "request_id": r.request_id,
                    "status": r.status,
                    **({"error": r.error} if r.error else {}),
                },
            )
            for r in results
        ]
        recorded = await self.helper.logger.log_batch_results(batch_id, calls)
        if recorded:
            for call in calls:
                observer().ai_call(call)
        return recorded

    def cost(self, results: Sequence[BatchResult]) -> float:
        """What these results cost, batch discount applied."""
        return sum(
            call_cost(self.model, r.input_tokens, r.output_tokens, batch=True) for r in results
        )


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
