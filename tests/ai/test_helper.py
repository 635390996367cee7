"""AIHelper on pydantic-ai's offline models: every call lands in the ledger with its cost."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_ai.embeddings.test import TestEmbeddingModel
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from tests.databases import open_storage
from wfc.runtime.adapters.memory import MemoryAICallLogger
from wfc.runtime.ai import (
    AIHelper,
    ModelConfig,
    ModelNotFoundError,
    ModelRegistry,
    ProviderSetupError,
    call_cost,
)
from wfc.runtime.ports import AICallLogger

PRICED = ModelConfig(
    key="house",
    model_id="test:house",
    input_cost_per_million=2.0,
    output_cost_per_million=8.0,
    batch_discount_percent=50,
)
EMBED = ModelConfig(
    key="house-embed",
    model_id="test:embed",
    input_cost_per_million=0.1,
    output_cost_per_million=0.0,
    is_embedding_model=True,
)


class Verdict(BaseModel):
    label: str
    score: float


def helper(logger: AICallLogger, model: object, topic: str = "workflow.r1.stage.s1") -> AIHelper:
    registry = ModelRegistry([PRICED, EMBED])
    return AIHelper(
        topic,
        logger,
        registry=registry,
        models=lambda _config: model,  # type: ignore[arg-type,return-value]
        embedders=lambda _config: TestEmbeddingModel(),
    )


@pytest.fixture(params=["memory", "sqlite"])
async def logger(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "memory":
        yield MemoryAICallLogger()
        return
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'ai.db'}")
    await storage.create_schema()
    yield storage.ai_calls
    await storage.close()


def reply(text: str) -> FunctionModel:
    def respond(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(text)])

    return FunctionModel(respond)


async def test_text_is_logged_with_tokens_and_the_price_table_cost(logger: AICallLogger) -> None:
    ai = helper(logger, reply("a fine summary"))
    result = await ai.generate_text("house", "Summarise: the quick brown fox")
    assert result.text == "a fine summary"
    assert result.input_tokens > 0 and result.output_tokens > 0
    expected = result.input_tokens * 2.0 / 1e6 + result.output_tokens * 8.0 / 1e6
    assert result.cost == pytest.approx(expected)
    stats = await logger.stats("workflow.r1")
    assert stats.total_calls == 1
    assert stats.total_input_tokens == result.input_tokens
    assert stats.total_cost == pytest.approx(expected)
    assert stats.per_model["house"].calls == 1


async def test_objects_are_validated_instances_of_the_schema(logger: AICallLogger) -> None:
    ai = helper(logger, TestModel(custom_output_args={"label": "positive", "score": 0.9}))
    result = await ai.generate_object("house", "Classify: great product", Verdict)
    assert result.object == Verdict(label="positive", score=0.9)
    assert (await ai.stats()).total_calls == 1


async def test_embeddings_count_input_tokens_only(logger: AICallLogger) -> None:
    ai = helper(logger, TestModel())
    one = await ai.embed("house-embed", "hello world")
    many = await ai.embed("house-embed", ["a", "b c", "d"], dimensions=4)
    assert len(one.embeddings) == 1 and one.embedding == one.embeddings[0]
    assert len(many.embeddings) == 3 and many.dimensions == 4
    stats = await ai.stats()
    assert stats.total_calls == 2 and stats.total_output_tokens == 0
    assert stats.total_cost == pytest.approx((one.input_tokens + many.input_tokens) * 0.1 / 1e6)


async def test_a_failed_call_is_logged_with_zero_cost_and_re_raised(logger: AICallLogger) -> None:
    def broken(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        raise RuntimeError("provider down")

    ai = helper(logger, FunctionModel(broken))
    with pytest.raises(RuntimeError, match="provider down"):
        await ai.generate_text("house", "hi")
    stats = await ai.stats()
    assert (stats.total_calls, stats.total_cost) == (1, 0.0)


async def test_stats_add_up_children_by_whole_topic_segments(logger: AICallLogger) -> None:
    stage = helper(logger, reply("x"), topic="workflow.r1.stage.s1")
    await stage.generate_text("house", "a")
    await stage.child("tool", "search").generate_text("house", "b")
    await helper(logger, reply("y"), topic="workflow.r1.stage.s10").generate_text("house", "c")
    assert (await stage.stats()).total_calls == 2  # s10 is not under s1
    assert (await logger.stats("workflow.r1")).total_calls == 3


def test_unknown_keys_name_the_known_ones() -> None:
    with pytest.raises(ModelNotFoundError) as raised:
        ModelRegistry([PRICED]).get("nope")
    assert str(raised.value) == 'Model "nope" not found. Available models: house'


def test_batch_cost_gets_the_discount_and_interactive_calls_never_do() -> None:
    assert call_cost(PRICED, 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert call_cost(PRICED, 1_000_000, 1_000_000, batch=True) == pytest.approx(5.0)


def test_built_in_prices_come_from_the_price_table() -> None:
    model = ModelRegistry().get("gpt-4o-mini")
    assert (model.input_cost_per_million, model.output_cost_per_million) == (0.15, 0.6)
    assert ModelRegistry().keys(is_embedding_model=True) == ["test-embed", "text-embedding-3-small"]


async def test_a_stream_is_logged_once_with_the_streamed_text(logger: AICallLogger) -> None:
    ai = helper(logger, TestModel(custom_output_text="streamed reply text"))
    chunks = []
    async with ai.stream_text("house", "Tell me") as stream:
        async for chunk in stream:
            chunks.append(chunk)
    assert "".join(chunks) == stream.text == "streamed reply text"
    assert stream.output_tokens > 0
    stats = await ai.stats()
    assert stats.total_calls == 1
    assert stats.total_cost == pytest.approx(stream.cost)


async def test_a_stream_that_fails_is_logged_once_as_failed(logger: AICallLogger) -> None:
    ai = helper(logger, TestModel())
    with pytest.raises(ValueError, match="consumer gave up"):
        async with ai.stream_text("house", "Tell me") as stream:
            async for _chunk in stream:
                raise ValueError("consumer gave up")
    stats = await ai.stats()
    assert (stats.total_calls, stats.total_cost) == (1, 0.0)


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("gpt-4o-mini", "OPENAI_API_KEY"),
        ("claude-haiku-4-5", "ANTHROPIC_API_KEY"),
        ("gemini-2.5-flash", "GOOGLE_API_KEY"),
    ],
)
async def test_a_missing_key_is_one_line_naming_the_variable(
    key: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    ai = AIHelper("t", MemoryAICallLogger())
    with pytest.raises(ProviderSetupError) as raised:
        await ai.generate_text(key, "hi")
    message = str(raised.value)
    assert (
        message
        == f"model {key} ({ai_model_id(key)}) needs an API key: set the {variable} environment variable"
    )
    assert "\n" not in message


def ai_model_id(key: str) -> str:
    return ModelRegistry().get(key).model_id


async def test_a_provider_error_quoting_the_key_never_reaches_the_ledger_or_the_caller(
    logger: AICallLogger, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-proj-abcdefghijklmnop1234"
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def unauthorised(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        raise RuntimeError(f"401 Incorrect API key provided: {secret}")

    ai = helper(logger, FunctionModel(unauthorised))
    with pytest.raises(Exception) as raised:
        await ai.generate_text("house", "hi")
    assert secret not in str(raised.value) and "***" in str(raised.value)
    assert raised.value.__cause__ is None
    stats = await ai.stats()
    assert stats.total_calls == 1
    if isinstance(logger, MemoryAICallLogger):
        assert all(secret not in str(call.metadata) for call in logger.calls)


async def test_custom_providers_serve_their_models_through_the_default_factories() -> None:
    from pydantic_ai.embeddings.test import TestEmbeddingModel

    from wfc.runtime.ai import register_provider

    register_provider(
        "inhouse",
        models=lambda _config: reply("from the in-house gateway"),
        embedders=lambda _config: TestEmbeddingModel(dimensions=3),
    )
    registry = ModelRegistry(
        [
            ModelConfig(
                key="chat",
                model_id="inhouse:chat-1",
                input_cost_per_million=1.0,
                output_cost_per_million=1.0,
            ),
            ModelConfig(
                key="vec",
                model_id="inhouse:vec-1",
                input_cost_per_million=1.0,
                output_cost_per_million=0.0,
                is_embedding_model=True,
            ),
        ]
    )
    ai = AIHelper("t", MemoryAICallLogger(), registry=registry)
    assert (await ai.generate_text("chat", "hi")).text == "from the in-house gateway"
    assert (await ai.embed("vec", "hello")).dimensions == 3
