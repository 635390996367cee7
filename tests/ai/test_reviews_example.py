"""The reviews example end to end on a SQLite file with an offline priced model: a batch
stage suspends and is polled, a text stage calls the model, and the run's total cost is
exactly the sum of the calls in its ledger (batch calls at the batch discount)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.databases import open_storage
from wfc.runtime.ai import ModelConfig, register_models
from wfc.runtime.records import Status
from wfc.runtime.registry import load_plan_path
from wfc.testing import FakeClock, make_test_kernel

register_models(
    ModelConfig(
        key="reviews-offline-priced",
        model_id="test",
        input_cost_per_million=3.0,
        output_cost_per_million=15.0,
        supports_batch=True,
        batch_discount_percent=50,
    )
)
MODEL = {"model": "reviews-offline-priced"}


async def test_the_reviews_example_costs_what_its_ledger_says(tmp_path: Path) -> None:
    workflow = load_plan_path(EXAMPLES / "reviews" / "review_labels")
    clock = FakeClock()
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
    await storage.create_schema()
    tk = make_test_kernel(workflow, clock=clock, storage=storage)
    run = await tk.run(
        "review_labels",
        {"reviews": ["Great!", "Awful.", "Fine."]},
        config={"classify": {**MODEL, "check_every_seconds": 5.0}, "summarize": MODEL},
    )
    assert run.status is Status.COMPLETED, run.error
    assert run.output["positive"] + run.output["negative"] + run.output["neutral"] == 3

    ledger = await tk.ai_calls.stats(f"workflow.{run.id}")
    batch = await tk.ai_calls.stats(f"workflow.{run.id}.stage.classify")
    assert (ledger.total_calls, batch.total_calls) == (4, 3)  # 3 batch results + 1 summary
    assert ledger.total_cost > 0
    assert run.total_cost == pytest.approx(ledger.total_cost)
    assert run.total_tokens == ledger.total_input_tokens + ledger.total_output_tokens
    full_price = (batch.total_input_tokens * 3.0 + batch.total_output_tokens * 15.0) / 1e6
    assert batch.total_cost == pytest.approx(full_price / 2)
    await storage.close()
