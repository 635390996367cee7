"""The model registry: which provider model a key names, what it costs, what it can do.

Prices come from `genai-prices` (a maintained price table) when a model does
not state its own; users register more models, or override prices, with
`register_models`. Keys are what stages and `.wf` configs use (`"gpt-4o-mini"`),
so switching a model is a config change, not a code change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from genai_prices import Usage, calc_price

from wfc.errors import WfcError

MILLION = 1_000_000


class ModelNotFoundError(WfcError):
    """A model key that neither the built-ins nor the registered models know."""

    def __init__(self, key: str, available: Iterable[str]) -> None:
        self.key = key
        super().__init__(f'Model "{key}" not found. Available models: {", ".join(available)}')


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """One usable model. `model_id` is `provider:model` as pydantic-ai names it.

    Prices are USD per million tokens; `None` means "look them up in the price
    table". Batch calls cost `batch_discount_percent` less.
    """

    key: str
    model_id: str
    name: str = ""
    input_cost_per_million: float | None = None
    output_cost_per_million: float | None = None
    supports_batch: bool = False
    batch_discount_percent: float = 0.0
    is_embedding_model: bool = False
    supports_tools: bool = True
    supports_structured_output: bool = True
    context_length: int | None = None

    @property
    def provider(self) -> str:
        return self.model_id.split(":", 1)[0]

    @property
    def provider_model(self) -> str:
        return self.model_id.split(":", 1)[-1]


BUILT_IN: tuple[ModelConfig, ...] = (
    # Offline models (pydantic-ai's TestModel and TestEmbeddingModel): no key, no network,
    # no cost. For examples, CI and tests; register priced copies to test cost arithmetic.
    ModelConfig(
        key="test",
        model_id="test",
        input_cost_per_million=0.0,
        output_cost_per_million=0.0,
        supports_batch=True,
    ),
    ModelConfig(
        key="test-embed",
        model_id="test",
        input_cost_per_million=0.0,
        output_cost_per_million=0.0,
        is_embedding_model=True,
    ),
    ModelConfig(
        key="gpt-4o-mini",
        model_id="openai:gpt-4o-mini",
        supports_batch=True,
        batch_discount_percent=50,
    ),
    ModelConfig(
        key="gpt-4o", model_id="openai:gpt-4o", supports_batch=True, batch_discount_percent=50
    ),
    ModelConfig(
        key="claude-haiku-4-5",
        model_id="anthropic:claude-haiku-4-5",
        supports_batch=True,
        batch_discount_percent=50,
    ),
    ModelConfig(
        key="gemini-2.5-flash",
        model_id="google:gemini-2.5-flash",
        supports_batch=True,
        batch_discount_percent=50,
    ),
    ModelConfig(
        key="text-embedding-3-small",
        model_id="openai:text-embedding-3-small",
        is_embedding_model=True,
        supports_tools=False,
        supports_structured_output=False,
    ),
)

_PRICE_PROVIDERS = {"google-cloud": "google", "google-gla": "google", "google-vertex": "google"}


def table_prices(config: ModelConfig) -> tuple[float, float]:
    """(input, output) USD per million tokens from genai-prices; `WfcError` if unknown."""
    provider = _PRICE_PROVIDERS.get(config.provider, config.provider)
    try:
        price = calc_price(
            Usage(input_tokens=MILLION, output_tokens=MILLION),
            model_ref=config.provider_model,
            provider_id=provider,
        )
    except LookupError as error:
        raise WfcError(
            f"no price known for model {config.model_id!r}; register it with "
            "input_cost_per_million and output_cost_per_million"
        ) from error
    return float(price.input_price), float(price.output_price)


class ModelRegistry:
    """Built-in models plus the ones a user registers (registered ones win)."""

    def __init__(self, models: Iterable[ModelConfig] = BUILT_IN) -> None:
        self._models: dict[str, ModelConfig] = {m.key: m for m in models}

    def register(self, *models: ModelConfig) -> None:
        for model in models:
            self._models[model.key] = model

    def get(self, key: str) -> ModelConfig:
        """The model with prices filled in; `ModelNotFoundError` names the known keys."""
        model = self._models.get(key)
        if model is None:
            raise ModelNotFoundError(key, sorted(self._models))
        if model.input_cost_per_million is None or model.output_cost_per_million is None:
            inp, out = table_prices(model)
            model = replace(
                model,
                input_cost_per_million=inp
                if model.input_cost_per_million is None
                else model.input_cost_per_million,
                output_cost_per_million=out
                if model.output_cost_per_million is None
                else model.output_cost_per_million,
            )
            self._models[key] = model
        return model

    def keys(
        self,
        *,
        supports_batch: bool | None = None,
        is_embedding_model: bool | None = None,
        supports_tools: bool | None = None,
        supports_structured_output: bool | None = None,
    ) -> list[str]:
        """Keys, sorted, filtered on capabilities (True: must have; False: must not)."""
        wanted = {
            "supports_batch": supports_batch,
            "is_embedding_model": is_embedding_model,
            "supports_tools": supports_tools,
            "supports_structured_output": supports_structured_output,
        }
        return sorted(
            key
            for key, model in self._models.items()
            if all(v is None or getattr(model, k) is v for k, v in wanted.items())
        )


def call_cost(
    model: ModelConfig, input_tokens: int, output_tokens: int, *, batch: bool = False
) -> float:
    """USD for one call (spec §10.3); batch calls get the model's batch discount."""
    cost = input_tokens / MILLION * (
        model.input_cost_per_million or 0.0
    ) + output_tokens / MILLION * (model.output_cost_per_million or 0.0)
    if batch:
        cost *= 1 - model.batch_discount_percent / 100
    return cost


default_registry = ModelRegistry()


def register_models(*models: ModelConfig) -> None:
    """Add or replace models in the process-wide registry."""
    default_registry.register(*models)
