"""Provider batch APIs: what one is (`BatchProvider`, the shapes it speaks) and the ones wfc has.

One `BatchProvider` per provider API, each over its official SDK (OpenAI
files + batches, Anthropic message batches, Google Gemini inline batch jobs),
so credentials come from the SDK's usual environment variables; and
`OfflineBatches`, in this process, for examples and tests.

Apart from `wfc.runtime.ai.batch` because the two change for different
reasons: this module follows the providers' SDKs and wire formats (a new
state name, a new field for token counts), that one is how a stage uses any
of them (parsing results, recording their cost once). A provider returns
`RawResult`s as the API gave them; parsing them is not its job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from wfc.errors import WfcError
from wfc.runtime.ai.models import ModelConfig

BatchState = Literal["pending", "processing", "completed", "failed", "expired", "cancelled"]
FINISHED: frozenset[BatchState] = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRequest:
    """One prompt of a batch; `schema` asks for (and validates) a JSON object."""

    id: str
    prompt: str
    schema: type[BaseModel] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStatus:
    id: str
    provider: str
    state: BatchState
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True, slots=True, kw_only=True)
class RawResult:
    """What a provider returned for one request, before parsing."""

    request_id: str
    text: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None


class BatchProvider(Protocol):
    """A provider's batch API."""

    name: str

    async def submit(self, model: ModelConfig, requests: Sequence[BatchRequest]) -> str:
        """Create the batch; its id."""
        ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str) -> list[RawResult]:
        """Every request's result (only for a completed batch)."""
        ...


# -- providers --------------------------------------------------------------------------


def _prompt_with_schema(request: BatchRequest) -> str:
    if request.schema is None:
        return request.prompt
    schema = json.dumps(request.schema.model_json_schema())
    return f"{request.prompt}\n\nAnswer with one JSON object matching this JSON Schema:\n{schema}"


class OpenAIBatches:
    """OpenAI's Batch API: a JSONL file of chat completions, then a batch over it."""

    name = "openai"

    def __init__(self, client: Any = None) -> None:
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI()
        self.client = client

    async def submit(self, model: ModelConfig, requests: Sequence[BatchRequest]) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": r.id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": model.provider_model,
                        "messages": [{"role": "user", "content": _prompt_with_schema(r)}],
                    },
                }
            )
            for r in requests
        ]
        upload = await self.client.files.create(
            file=("batch.jsonl", "\n".join(lines).encode()), purpose="batch"
        )
        batch = await self.client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return str(batch.id)

    _STATES: dict[str, BatchState] = {
        "validating": "pending",
        "in_progress": "processing",
        "finalizing": "processing",
        "completed": "completed",
        "failed": "failed",
        "expired": "expired",
        "cancelling": "cancelled",
        "cancelled": "cancelled",
    }

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self.client.batches.retrieve(batch_id)
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        message = "; ".join(str(getattr(e, "message", e)) for e in errors) or None
        return BatchStatus(
            id=batch_id, provider=self.name, state=self._STATES[batch.status], error=message
        )

    async def results(self, batch_id: str) -> list[RawResult]:
        batch = await self.client.batches.retrieve(batch_id)
        results: list[RawResult] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self.client.files.content(file_id)
                results += [_openai_line(json.loads(line)) for line in content.text.splitlines()]
        return results


def _openai_line(line: dict[str, Any]) -> RawResult:
    response = line.get("response") or {}
    body = response.get("body") or {}
    usage = body.get("usage") or {}
    error = line.get("error") or body.get("error")
    if error or response.get("status_code", 200) >= 400:
        message = (error or {}).get("message") if isinstance(error, dict) else str(error)
        return RawResult(request_id=line["custom_id"], text=None, error=message or "failed")
    return RawResult(
        request_id=line["custom_id"],
        text=body["choices"][0]["message"]["content"],
        input_tokens=int(usage.get("prompt_tokens", 0)),
        output_tokens=int(usage.get("completion_tokens", 0)),
    )


class AnthropicBatches:
    """Anthropic's Message Batches API."""

    name = "anthropic"

    def __init__(self, client: Any = None, *, max_tokens: int = 1024) -> None:
        if client is None:
            from anthropic import AsyncAnthropic

            client = AsyncAnthropic()
        self.client = client
        self.max_tokens = max_tokens

    async def submit(self, model: ModelConfig, requests: Sequence[BatchRequest]) -> str:
        batch = await self.client.messages.batches.create(
            requests=[
                {
                    "custom_id": r.id,
                    "params": {
                        "model": model.provider_model,
                        "max_tokens": self.max_tokens,
                        "messages": [{"role": "user", "content": _prompt_with_schema(r)}],
                    },
                }
                for r in requests
            ]
        )
        return str(batch.id)

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self.client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "in_progress":
            return BatchStatus(id=batch_id, provider=self.name, state="processing")
        if batch.processing_status == "canceling":
            return BatchStatus(id=batch_id, provider=self.name, state="cancelled")
        counts = batch.request_counts
        if counts.succeeded == 0 and counts.errored == 0 and counts.expired > 0:
            return BatchStatus(id=batch_id, provider=self.name, state="expired")
        return BatchStatus(id=batch_id, provider=self.name, state="completed")

    async def results(self, batch_id: str) -> list[RawResult]:
        results: list[RawResult] = []
        async for entry in await self.client.messages.batches.results(batch_id):
            outcome = entry.result
            if outcome.type != "succeeded":
                error = getattr(getattr(outcome, "error", None), "error", None)
                message = getattr(error, "message", None) or outcome.type
                results.append(RawResult(request_id=entry.custom_id, text=None, error=message))
                continue
            message = outcome.message
            text = "".join(block.text for block in message.content if block.type == "text")
            results.append(
                RawResult(
                    request_id=entry.custom_id,
                    text=text,
                    input_tokens=message.usage.input_tokens,
                    output_tokens=message.usage.output_tokens,
                )
            )
        return results


class GoogleBatches:
    """Gemini batch jobs with inline requests; each request carries its id as metadata."""

    name = "google"

    def __init__(self, client: Any = None) -> None:
        if client is None:
            from google import genai

            client = genai.Client()
        self.client = client

    async def submit(self, model: ModelConfig, requests: Sequence[BatchRequest]) -> str:
        job = await self.client.aio.batches.create(
            model=model.provider_model,
            src=[
                {
                    "contents": [{"role": "user", "parts": [{"text": _prompt_with_schema(r)}]}],
                    "metadata": {"request_id": r.id},
                }
                for r in requests
            ],
        )
        return str(job.name)

    _STATES: dict[str, BatchState] = {
        "JOB_STATE_UNSPECIFIED": "pending",
        "JOB_STATE_QUEUED": "pending",
        "JOB_STATE_PENDING": "pending",
        "JOB_STATE_RUNNING": "processing",
        "JOB_STATE_UPDATING": "processing",
        "JOB_STATE_PAUSED": "processing",
        "JOB_STATE_SUCCEEDED": "completed",
        "JOB_STATE_PARTIALLY_SUCCEEDED": "completed",
        "JOB_STATE_FAILED": "failed",
        "JOB_STATE_CANCELLING": "cancelled",
        "JOB_STATE_CANCELLED": "cancelled",
        "JOB_STATE_EXPIRED": "expired",
    }

    async def status(self, batch_id: str) -> BatchStatus:
        job = await self.client.aio.batches.get(name=batch_id)
        state = getattr(job.state, "value", str(job.state))
        error = getattr(job.error, "message", None) if job.error else None
        return BatchStatus(id=batch_id, provider=self.name, state=self._STATES[state], error=error)

    async def results(self, batch_id: str) -> list[RawResult]:
        job = await self.client.aio.batches.get(name=batch_id)
        responses = (job.dest.inlined_responses if job.dest else None) or []
        results: list[RawResult] = []
        for index, item in enumerate(responses):
            request_id = (item.metadata or {}).get("request_id", str(index))
            if item.error is not None or item.response is None:
                message = getattr(item.error, "message", None) or "no response"
                results.append(RawResult(request_id=request_id, text=None, error=message))
                continue
            usage = item.response.usage_metadata
            results.append(
                RawResult(
                    request_id=request_id,
                    text=item.response.text,
                    input_tokens=int(getattr(usage, "prompt_token_count", 0) or 0),
                    output_tokens=int(getattr(usage, "candidates_token_count", 0) or 0),
                )
            )
        return results


class OfflineBatches:
    """A batch API in this process, for examples and tests: no key, no network.

    A batch is processing on its first status check and completed on the
    next; each result is a JSON object built from the request's schema
    (pydantic-ai's `TestModel` does the same for interactive calls), with
    token counts estimated from the text. Batches live as long as the process.
    """

    name = "offline"
    _batches: ClassVar[dict[str, list[BatchRequest]]] = {}
    _checks: ClassVar[dict[str, int]] = {}

    async def submit(self, model: ModelConfig, requests: Sequence[BatchRequest]) -> str:
        batch_id = f"offline-{len(self._batches) + 1}-{abs(hash(tuple(r.id for r in requests)))}"
        self._batches[batch_id] = list(requests)
        self._checks[batch_id] = 0
        return batch_id

    async def status(self, batch_id: str) -> BatchStatus:
        if batch_id not in self._batches:
            return BatchStatus(id=batch_id, provider=self.name, state="expired", error="unknown")
        self._checks[batch_id] += 1
        state: BatchState = "processing" if self._checks[batch_id] < 2 else "completed"
        return BatchStatus(id=batch_id, provider=self.name, state=state)

    async def results(self, batch_id: str) -> list[RawResult]:
        return [
            RawResult(
                request_id=r.id,
                text=json.dumps(_example_of(r.schema)) if r.schema else f"offline reply to {r.id}",
                input_tokens=max(1, len(_prompt_with_schema(r)) // 4),
                output_tokens=8,
            )
            for r in self._batches.get(batch_id, [])
        ]


def _example_of(schema: type[BaseModel]) -> dict[str, Any]:
    """A value for every required field, by JSON type (what an offline model can promise)."""
    samples: dict[str, Any] = {"string": "a", "integer": 0, "number": 0.0, "boolean": False}
    properties = schema.model_json_schema().get("properties", {})

    def sample(spec: dict[str, Any]) -> Any:
        if "default" in spec:
            return spec["default"]
        if spec.get("enum"):
            return spec["enum"][0]
        return samples.get(str(spec.get("type")))

    return {name: sample(spec) for name, spec in properties.items()}


def infer_provider(model: ModelConfig) -> str:
    """Which batch API serves a model: from its provider prefix."""
    provider = model.provider
    if model.model_id == "test":
        return "offline"
    if provider.startswith("google"):
        return "google"
    if provider in ("openai", "anthropic"):
        return provider
    raise WfcError(f"model {model.key} ({model.model_id}) has no batch provider")


def batch_provider(name: str) -> BatchProvider:
    """A provider over its SDK's default client (credentials from the environment)."""
    providers: dict[
        str,
        type[OpenAIBatches] | type[AnthropicBatches] | type[GoogleBatches] | type[OfflineBatches],
    ] = {
        "offline": OfflineBatches,
        "openai": OpenAIBatches,
        "anthropic": AnthropicBatches,
        "google": GoogleBatches,
    }
    if name not in providers:
        raise WfcError(f"Unsupported batch provider {name!r}; use one of {sorted(providers)}")
    return providers[name]()
