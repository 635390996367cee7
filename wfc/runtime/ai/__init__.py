"""The AI helper: model calls with a token and cost ledger (DESIGN.md §6, spec §10)."""

from __future__ import annotations

from wfc.runtime.ai.batch import AIBatch, BatchResult
from wfc.runtime.ai.batch_providers import (
    AnthropicBatches,
    BatchProvider,
    BatchRequest,
    BatchStatus,
    GoogleBatches,
    OpenAIBatches,
)
from wfc.runtime.ai.helper import (
    AIHelper,
    EmbedResult,
    ModelCallError,
    ObjectResult,
    ProviderSetupError,
    TextResult,
    TextStream,
    create_ai_helper,
    register_provider,
)
from wfc.runtime.ai.models import (
    ModelConfig,
    ModelNotFoundError,
    ModelRegistry,
    call_cost,
    default_registry,
    register_models,
)

__all__ = [
    "AIBatch",
    "AIHelper",
    "AnthropicBatches",
    "BatchProvider",
    "BatchRequest",
    "BatchResult",
    "BatchStatus",
    "EmbedResult",
    "GoogleBatches",
    "ModelCallError",
    "ModelConfig",
    "ModelNotFoundError",
    "ModelRegistry",
    "ObjectResult",
    "OpenAIBatches",
    "ProviderSetupError",
    "TextResult",
    "TextStream",
    "call_cost",
    "create_ai_helper",
    "default_registry",
    "register_models",
    "register_provider",
]
