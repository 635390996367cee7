"""`AIHelper`: model calls bound to a topic, each one recorded in the token and cost ledger.

Calls go through pydantic-ai (many providers, typed structured output,
embeddings, offline test models); every call, failed ones included, is
written through the `AICallLogger` port under the helper's topic
(`workflow.<run>.stage.<stage>` inside a stage), so `stats(prefix)` can add up
a stage, a run or a whole workflow.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from pydantic_ai import Agent, Embedder
from pydantic_ai.embeddings import EmbeddingModel, EmbeddingSettings
from pydantic_ai.embeddings.test import TestEmbeddingModel
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from wfc.errors import WfcError
from wfc.observability import observer
from wfc.runtime.adapters.memory.clock import SystemClock, UuidIds
from wfc.runtime.ai.batch import AIBatch
from wfc.runtime.ai.batch_providers import BatchProvider, batch_provider, infer_provider
from wfc.runtime.ai.models import ModelConfig, ModelRegistry, call_cost, default_registry
from wfc.runtime.ai.secrets import redact
from wfc.runtime.ai_records import AICallRecord, AIStats
from wfc.runtime.ports import AICallLogger, Clock, IdSource

T = TypeVar("T", bound=BaseModel)
OutT = TypeVar("OutT")
CallType = Literal["text", "object", "embed", "stream", "batch"]
ModelFactory = Callable[[ModelConfig], Model | str]
EmbedderFactory = Callable[[ModelConfig], EmbeddingModel | str]


_CUSTOM_MODELS: dict[str, ModelFactory] = {}
_CUSTOM_EMBEDDERS: dict[str, EmbedderFactory] = {}


def register_provider(
    name: str,
    *,
    models: ModelFactory | None = None,
    embedders: EmbedderFactory | None = None,
) -> None:
    """Serve models whose id starts with `<name>:` from your own factories (a private
    gateway, a local server, a custom embedding service): each gets the model's config
    and returns a pydantic-ai `Model` / `EmbeddingModel` (or a model id string)."""
    if models is not None:
        _CUSTOM_MODELS[name] = models
    if embedders is not None:
        _CUSTOM_EMBEDDERS[name] = embedders


def _model_id(config: ModelConfig) -> Model | str:
    custom = _CUSTOM_MODELS.get(config.provider)
    return custom(config) if custom is not None else config.model_id


def _embedder_id(config: ModelConfig) -> EmbeddingModel | str:
    custom = _CUSTOM_EMBEDDERS.get(config.provider)
    if custom is not None:
        return custom(config)
    if config.model_id == "test":  # pydantic-ai knows "test" for chat models only
        return TestEmbeddingModel()
    return config.model_id


@dataclass(frozen=True, slots=True, kw_only=True)
class TextResult:
    text: str
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectResult(Generic[T]):
    object: T
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedResult:
    embeddings: list[list[float]]
    dimensions: int
    input_tokens: int
    cost: float

    @property
    def embedding(self) -> list[float]:
        """The first embedding (the only one for a single text)."""
        return self.embeddings[0]


class ProviderSetupError(WfcError):
    """A model that cannot be used here: a missing API key or provider package."""


class ModelCallError(WfcError):
    """A provider error whose message had to be redacted (it quoted a key)."""


_KEY_VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*(?:API_KEY|CREDENTIALS|PROJECT)[A-Z0-9_]*)`")


def explain_setup_error(config: ModelConfig, error: Exception) -> ProviderSetupError | None:
    """One line naming what to set or install, for errors pydantic-ai raises before a call."""
    if isinstance(error, ImportError):
        return ProviderSetupError(
            f"model {config.key} ({config.model_id}) needs its provider package: "
            f"pip install 'pydantic-ai-slim[{config.provider}]'"
        )
    if isinstance(error, UserError):
        found = _KEY_VARIABLE.search(str(error))
        if found:
            return ProviderSetupError(
                f"model {config.key} ({config.model_id}) needs an API key: "
                f"set the {found.group(1)} environment variable"
            )
        return ProviderSetupError(f"model {config.key} ({config.model_id}): {error}")
    return None


class TextStream:
    """Chunks of a streamed reply as they arrive; `text` and tokens are filled in as it goes."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self._chunks = chunks
        self.text = ""
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        async for chunk in self._chunks:
            self.text += chunk
            yield chunk


class AIHelper:
    """Text, objects and embeddings from registered models, logged under `topic`."""

    def __init__(
        self,
        topic: str,
        logger: AICallLogger,
        *,
        registry: ModelRegistry = default_registry,
        models: ModelFactory = _model_id,
        embedders: EmbedderFactory = _embedder_id,
        clock: Clock | None = None,
        ids: IdSource | None = None,
    ) -> None:
        self.topic = topic
        self._logger = logger
        self._registry = registry
        self._models = models
        self._embedders = embedders
        self._clock = clock or SystemClock()
        self._ids = ids or UuidIds()

    def child(self, segment: str, id: str | None = None) -> AIHelper:
        """A helper for a sub-topic (`<topic>.<segment>[.<id>]`), same logger and models."""
        topic = f"{self.topic}.{segment}" + (f".{id}" if id else "")
        return AIHelper(
            topic,
            self._logger,
            registry=self._registry,
            models=self._models,
            embedders=self._embedders,
            clock=self._clock,
            ids=self._ids,
        )

    async def stats(self) -> AIStats:
        """Calls, tokens and cost under this topic, children included."""
        return await self._logger.stats(self.topic)

    async def generate_text(
        self,
        model_key: str,
        prompt: str,
        *,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        instructions: str | None = None,
    ) -> TextResult:
        """Generate text; temperature 0.7 unless given."""
        config = self._registry.get(model_key)
        settings = _settings(temperature, max_tokens)
        agent = self._agent(config, str, instructions)
        started = time.perf_counter()
        try:
            result = await agent.run(prompt, model_settings=settings)
        except Exception as error:
            await self._record_failure(config, "text", prompt, started, error)
            raise
        usage = result.usage
        cost = call_cost(config, usage.input_tokens, usage.output_tokens)
        await self.record(
            config,
            "text",
            prompt,
            result.output,
            usage.input_tokens,
            usage.output_tokens,
            {"temperature": temperature, "max_tokens": max_tokens, **_took(started)},
        )
        return TextResult(
            text=result.output,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=cost,
        )

    @asynccontextmanager
    async def stream_text(
        self,
        model_key: str,
        prompt: str,
        *,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        instructions: str | None = None,
    ) -> AsyncIterator[TextStream]:
        """`async with ai.stream_text(key, prompt) as stream: async for chunk in stream: …`

        The call is logged exactly once, when the block ends (with what was
        streamed, also when the consumer stops early), or once as failed.
        """
        config = self._registry.get(model_key)
        agent = self._agent(config, str, instructions)
        started = time.perf_counter()
        try:
            async with agent.run_stream(
                prompt, model_settings=_settings(temperature, max_tokens)
            ) as result:
                stream = TextStream(result.stream_text(delta=True))
                yield stream
                usage = result.usage
        except Exception as error:
            await self._record_failure(config, "stream", prompt, started, error)
            raise
        stream.input_tokens, stream.output_tokens = usage.input_tokens, usage.output_tokens
        stream.cost = call_cost(config, usage.input_tokens, usage.output_tokens)
        await self.record(
            config,
            "stream",
            prompt,
            stream.text,
            usage.input_tokens,
            usage.output_tokens,
            {"temperature": temperature, "max_tokens": max_tokens, **_took(started)},
        )

    async def generate_object(
        self,
        model_key: str,
        prompt: str,
        schema: type[T],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        instructions: str | None = None,
    ) -> ObjectResult[T]:
        """Generate an instance of `schema` (validated; the model is asked again if invalid)."""
        config = self._registry.get(model_key)
        agent = self._agent(config, schema, instructions)
        started = time.perf_counter()
        try:
            result = await agent.run(prompt, model_settings=_settings(temperature, max_tokens))
        except Exception as error:
            await self._record_failure(config, "object", prompt, started, error)
            raise
        usage = result.usage
        response = json.dumps(result.output.model_dump(mode="json"), indent=2)
        await self.record(
            config,
            "object",
            prompt,
            response,
            usage.input_tokens,
            usage.output_tokens,
            {"temperature": temperature, "schema": schema.__name__, **_took(started)},
        )
        return ObjectResult(
            object=result.output,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=call_cost(config, usage.input_tokens, usage.output_tokens),
        )

    async def embed(
        self, model_key: str, texts: str | Sequence[str], *, dimensions: int | None = None
    ) -> EmbedResult:
        """Embed one text or several in one call; input tokens only."""
        config = self._registry.get(model_key)
        batch = [texts] if isinstance(texts, str) else list(texts)
        prompt = batch[0] if isinstance(texts, str) else f"[{len(batch)} texts]"
        try:
            embedder = Embedder(self._embedders(config))
        except (ImportError, UserError) as error:
            raise explain_setup_error(config, error) or error from error
        settings: EmbeddingSettings | None = (
            {"dimensions": dimensions} if dimensions is not None else None
        )
        started = time.perf_counter()
        try:
            result = await embedder.embed_documents(batch, settings=settings)
        except Exception as error:
            await self._record_failure(config, "embed", prompt, started, error)
            raise
        vectors = [list(map(float, v)) for v in result.embeddings]
        size = len(vectors[0]) if vectors else 0
        tokens = result.usage.input_tokens
        await self.record(
            config,
            "embed",
            prompt,
            f"[{len(vectors)} embeddings, {size} dims]",
            tokens,
            0,
            {"dimensions": size, **_took(started)},
        )
        return EmbedResult(
            embeddings=vectors,
            dimensions=size,
            input_tokens=tokens,
            cost=call_cost(config, tokens, 0),
        )

    def _agent(
        self, config: ModelConfig, output: type[OutT], instructions: str | None
    ) -> Agent[None, OutT]:
        try:
            return Agent(self._models(config), output_type=output, instructions=instructions)
        except (ImportError, UserError) as error:
            raise explain_setup_error(config, error) or error from error

    @property
    def logger(self) -> AICallLogger:
        return self._logger

    def batch(self, model_key: str, provider: str | BatchProvider | None = None) -> AIBatch:
        """The batch API for a model: `provider` by name or object, else inferred from the
        model id (openai, anthropic, google). Results are logged under this topic."""
        config = self._registry.get(model_key)
        if not config.supports_batch:
            raise WfcError(f"model {model_key} does not support batches")
        chosen = provider if provider is not None else infer_provider(config)
        return AIBatch(
            helper=self,
            model=config,
            provider=batch_provider(chosen) if isinstance(chosen, str) else chosen,
        )

    def call_record(
        self,
        config: ModelConfig,
        call_type: CallType,
        prompt: str,
        response: str,
        input_tokens: int,
        output_tokens: int,
        metadata: dict[str, Any] | None = None,
    ) -> AICallRecord:
        """A ledger entry for one call under this topic (batch calls get the batch discount)."""
        batch = call_type == "batch"
        return AICallRecord(
            id=self._ids.new_id(),
            topic=self.topic,
            call_type=call_type,
            model_key=config.key,
            model_id=config.model_id,
            prompt=prompt,
            response=response,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=call_cost(config, input_tokens, output_tokens, batch=batch),
            created_at=self._clock.now(),
            metadata={**(metadata or {}), **({"is_batch": True} if batch else {})},
        )

    async def record(
        self,
        config: ModelConfig,
        call_type: CallType,
        prompt: str,
        response: str,
        input_tokens: int,
        output_tokens: int,
        metadata: dict[str, Any] | None = None,
    ) -> AICallRecord:
        """Write one call to the ledger (what `recordCall` is in the reference engine)."""
        record = self.call_record(
            config, call_type, prompt, response, input_tokens, output_tokens, metadata
        )
        await self._logger.log_call(record)
        observer().ai_call(record)  # a span and metrics when observability is on
        return record

    async def _record_failure(
        self,
        config: ModelConfig,
        call_type: CallType,
        prompt: str,
        started: float,
        error: Exception,
    ) -> None:
        """Log the failed call. A missing key or package becomes one clear error; an error
        whose message quotes a key is raised again with the key masked (and no cause)."""
        explained = explain_setup_error(config, error)
        message = f"{type(error).__name__}: {error}"
        safe = redact(message)
        await self.record(
            config,
            call_type,
            prompt,
            "",
            0,
            0,
            {"status": "error", "error": safe, **_took(started)},
        )
        if explained is not None:
            raise explained from error
        if safe != message:
            raise ModelCallError(f"model {config.key} failed: {safe}") from None


def _settings(temperature: float, max_tokens: int | None) -> ModelSettings:
    settings: ModelSettings = {"temperature": temperature}
    if max_tokens is not None:
        settings["max_tokens"] = max_tokens
    return settings


def _took(started: float) -> dict[str, float]:
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 2)}


def create_ai_helper(topic: str, logger: AICallLogger, **options: Any) -> AIHelper:
    """An `AIHelper` outside a stage (scripts, services); same options as the constructor."""
    return AIHelper(topic, logger, **options)
