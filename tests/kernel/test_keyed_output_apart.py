"""A delivered `job.execute` (one under an idempotency key: a queue message) stores its
result under the key without its output, which its stage's blob (an item's row) holds
already; a repeated delivery still returns the output the first one returned. On memory,
a SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Script
from tests.kernel.helpers import start
from tests.kernel.test_job_execute import keyed_split
from tests.kernel.test_map import workflows
from wfc.runtime import JobExecute
from wfc.runtime.records import Replay
from wfc.testing import TestKernel


async def _stored(tk: TestKernel, key: str) -> dict[str, Any]:
    """The result the key holds, as the store hands it to a replay."""
    claim = await tk.persistence.acquire_idempotency_key(
        key, "job.execute", tk.clock.now(), timedelta(minutes=10)
    )
    assert isinstance(claim, Replay), claim
    return claim.result


async def test_a_repeated_delivery_returns_the_output_its_key_does_not_store(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    cmd = keyed_split(run_id)
    assert cmd.idempotency_key is not None
    first = await tk.kernel.dispatch(cmd)
    assert first.outcome == "completed"
    assert first.output == {"words": ["the", "quick", "brown", "fox"]}

    stored = await _stored(tk, cmd.idempotency_key)
    assert "output" not in stored
    assert stored["outcome"] == "completed"

    assert await tk.kernel.dispatch(cmd) == first
    assert script.calls["split"] == 1


async def test_a_result_without_output_is_stored_with_its_null(
    tk: TestKernel, script: Script
) -> None:
    """A failed delivery has no output: stored as null, a replay reads nothing back."""
    script.then("split", RuntimeError("once"))
    run_id = await start(tk, "linear")
    cmd = keyed_split(run_id)
    assert cmd.idempotency_key is not None
    first = await tk.kernel.dispatch(cmd)
    assert (first.outcome, first.output) == ("failed", None)
    assert (await _stored(tk, cmd.idempotency_key))["output"] is None
    assert await tk.kernel.dispatch(cmd) == first


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_a_repeated_delivery_of_an_item_returns_its_output(kind: str, tmp_path: Path) -> None:
    async with kernel_on_storage(kind, workflows(), tmp_path) as tk:
        run_id = await tk.create_run("strict", {"texts": [{"text": "abc"}, {"text": "de"}]})
        await tk.tick()  # claimed: the items' jobs queued
        cmd = JobExecute(
            workflow_run_id=run_id,
            workflow_id="strict",
            stage_id="measure",
            item=1,
            attempt=1,
            idempotency_key="job:item-1:attempt:1",
        )
        first = await tk.kernel.dispatch(cmd)
        assert (first.outcome, first.output) == ("completed", {"length": 2})
        assert "output" not in await _stored(tk, "job:item-1:attempt:1")
        assert await tk.kernel.dispatch(cmd) == first
