"""The AI helper's ledger records: one call to a model, and totals over calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import JsonObject


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class AICallRecord:
    """One call to a model, for the token and cost ledger."""

    id: str
    topic: str
    call_type: Literal["text", "object", "embed", "stream", "batch"]
    model_key: str
    model_id: str
    prompt: str
    response: str
    input_tokens: int
    output_tokens: int
    cost: float
    created_at: datetime
    metadata: JsonObject = field(default_factory=dict)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ModelUsage:
    """Calls, tokens and cost of one model within an `AIStats`."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class AIStats:
    """Totals over the calls under a topic prefix, and per model key."""

    total_calls: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_cost: float = 0.0
    per_model: dict[str, ModelUsage] = field(default_factory=dict)
