"""Batch submit / poll / results for OpenAI, Anthropic and Google over recorded HTTP
exchanges (the SDKs' own clients on mock transports; no network), and the ledger
recording each batch's usage exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import pytest
from pydantic import BaseModel

from tests.ai.recorded import anthropic_exchange, google_exchange, openai_exchange
from wfc.runtime.adapters.memory import MemoryAICallLogger
from wfc.runtime.ai import (
    AIHelper,
    AnthropicBatches,
    BatchProvider,
    BatchRequest,
    GoogleBatches,
    ModelConfig,
    ModelRegistry,
    OpenAIBatches,
    call_cost,
)


class Label(BaseModel):
    label: str


MODELS = {
    "openai": ModelConfig(
        key="o",
        model_id="openai:gpt-4o-mini",
        input_cost_per_million=1.0,
        output_cost_per_million=4.0,
        supports_batch=True,
        batch_discount_percent=50,
    ),
    "anthropic": ModelConfig(
        key="a",
        model_id="anthropic:claude-haiku-4-5",
        input_cost_per_million=1.0,
        output_cost_per_million=5.0,
        supports_batch=True,
        batch_discount_percent=50,
    ),
    "google": ModelConfig(
        key="g",
        model_id="google:gemini-2.5-flash",
        input_cost_per_million=0.3,
        output_cost_per_million=2.5,
        supports_batch=True,
        batch_discount_percent=50,
    ),
}
REQUESTS = [
    BatchRequest(id="a", prompt="Classify: I love it", schema=Label),
    BatchRequest(id="b", prompt="Classify: meh", schema=Label),
]


def openai_provider() -> tuple[OpenAIBatches, list[Any]]:
    from openai import AsyncOpenAI

    handler, calls = openai_exchange(httpx2.Response)
    client = AsyncOpenAI(
        api_key="sk-test", http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    )
    return OpenAIBatches(client), calls


def anthropic_provider() -> tuple[AnthropicBatches, list[Any]]:
    from anthropic import AsyncAnthropic

    handler, calls = anthropic_exchange(httpx2.Response)
    client = AsyncAnthropic(
        api_key="sk-ant-test",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    return AnthropicBatches(client), calls


def google_provider() -> tuple[GoogleBatches, list[Any]]:
    from google import genai
    from google.genai import types

    handler, calls = google_exchange(httpx.Response)
    client = genai.Client(
        api_key="g-test",
        http_options=types.HttpOptions(
            httpx_async_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
        ),
    )
    return GoogleBatches(client), calls


PROVIDERS: dict[str, Callable[[], tuple[BatchProvider, list[Any]]]] = {
    "openai": openai_provider,
    "anthropic": anthropic_provider,
    "google": google_provider,
}
OK_BATCH = {"openai": "batch_ok", "anthropic": "msgbatch_ok", "google": "batches/ok"}
EXPECTED = {  # request id -> (status, label or error fragment, input tokens, output tokens)
    "openai": {
        "a": ("succeeded", "positive", 100, 20),
        "b": ("failed", "label", 90, 10),
        "c": ("failed", "too many tokens", 0, 0),
    },
    "anthropic": {
        "a": ("succeeded", "negative", 80, 12),
        "b": ("failed", "prompt is too long", 0, 0),
    },
    "google": {"a": ("succeeded", "neutral", 70, 9), "b": ("failed", "safety block", 0, 0)},
}


def helper_for(name: str, logger: MemoryAICallLogger) -> AIHelper:
    return AIHelper("workflow.r1.stage.embed", logger, registry=ModelRegistry(MODELS.values()))


@pytest.mark.parametrize("name", ["openai", "anthropic", "google"])
async def test_submit_poll_and_fetch_results_once(name: str) -> None:
    provider, calls = PROVIDERS[name]()
    logger = MemoryAICallLogger()
    batch = helper_for(name, logger).batch(MODELS[name].key, provider)

    submitted = await batch.submit(REQUESTS)
    assert (submitted.id, submitted.provider, submitted.state) == (OK_BATCH[name], name, "pending")
    sent = b"".join(body for method, _path, body in calls if method == "POST")
    assert b"Classify: I love it" in sent and b"JSON Schema" in sent

    status = await batch.status(submitted.id)
    while not status.finished:  # the OpenAI exchange reports in_progress once
        assert status.state == "processing"
        status = await batch.status(submitted.id)
    assert status.state == "completed"

    results = await batch.results(submitted.id)
    got = {r.request_id: r for r in results}
    assert set(got) == set(EXPECTED[name])
    for request_id, (state, fragment, tokens_in, tokens_out) in EXPECTED[name].items():
        result = got[request_id]
        assert result.status == state
        if state == "succeeded":
            assert result.result == Label(label=fragment)
        else:
            assert fragment in (result.error or "")
        assert (result.input_tokens, result.output_tokens) == (tokens_in, tokens_out)

    calls_logged = logger.calls
    assert [c.call_type for c in calls_logged] == ["batch"] * len(results)
    expected_cost = sum(
        call_cost(MODELS[name], t_in, t_out, batch=True)
        for _s, _f, t_in, t_out in EXPECTED[name].values()
    )
    stats = await logger.stats("workflow.r1")
    assert stats.total_cost == pytest.approx(expected_cost)
    assert stats.total_cost == pytest.approx(batch.cost(results))

    again = await batch.results(submitted.id)  # a re-poll, or the stage retried
    assert len(again) == len(results)
    assert len(logger.calls) == len(results)  # recorded once per batch id
    assert await batch.is_recorded(submitted.id)


@pytest.mark.parametrize(
    ("name", "batch_id", "state"),
    [
        ("openai", "batch_expired", "expired"),
        ("openai", "batch_failed", "failed"),
        ("anthropic", "msgbatch_expired", "expired"),
        ("google", "batches/expired", "expired"),
        ("google", "batches/failed", "failed"),
    ],
)
async def test_failed_and_expired_batches_are_reported(
    name: str, batch_id: str, state: str
) -> None:
    provider, _calls = PROVIDERS[name]()
    batch = helper_for(name, MemoryAICallLogger()).batch(MODELS[name].key, provider)
    status = await batch.status(batch_id)
    assert (status.state, status.finished) == (state, True)
    if (name, state) == ("openai", "failed"):
        assert status.error == "model not found"


def test_without_a_provider_the_model_id_picks_one() -> None:
    from wfc.runtime.ai.batch import infer_provider

    assert [infer_provider(m) for m in MODELS.values()] == ["openai", "anthropic", "google"]
    assert json.dumps(sorted(MODELS)) == '["anthropic", "google", "openai"]'
