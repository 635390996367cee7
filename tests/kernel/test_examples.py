"""Every example workflow runs end to end on the memory kernel, with its real stage code."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLES
from wfc.errors import InvalidRunInputError
from wfc.runtime import RunClaimPending, RunSignal, Workflow, load_registry
from wfc.runtime.records import Status
from wfc.testing import TestKernel, make_test_kernel


@pytest.fixture(scope="module")
def examples() -> Iterator[list[Workflow]]:
    before = list(sys.path)
    registry = load_registry(
        [
            EXAMPLES / "documents" / "document_processor",
            EXAMPLES / "batch" / "batch_embeddings" / "plan.json",
            EXAMPLES / "invoices" / "invoice",
            EXAMPLES / "approval" / "approval",
        ]
    )
    yield [w for i in registry.ids() if (w := registry.get(i)) is not None]
    sys.path[:] = before


@pytest.fixture
def ek(examples: list[Workflow]) -> TestKernel:
    return make_test_kernel(*examples)


async def test_document_pipeline(ek: TestKernel) -> None:
    run = await ek.run(
        "document_processor",
        {
            "document": "Great product. I love it. The delivery was terrible though.",
            "title": "Review",
        },
    )
    assert run.status is Status.COMPLETED, run.error
    assert run.output["sentiment"] == "positive"
    assert [k["term"] for k in run.output["keywords"]][:2] == ["delivery", "great"]
    stages = await ek.persistence.stages_of_run(run.id)
    assert [(s.stage_id, s.execution_group, s.status.value) for s in stages] == [
        ("extract", 1, "COMPLETED"),
        ("score_chunks", 2, "COMPLETED"),
        ("sentiment", 3, "COMPLETED"),
        ("keywords", 3, "COMPLETED"),
        ("statistics", 3, "COMPLETED"),
        ("review", 4, "SKIPPED"),  # its `when`: a clearly negative document only
        ("summarize", 5, "COMPLETED"),
    ]
    assert "flagged for review" not in run.output["summary"]
    # Four sentences, three to a chunk: two chunks, each scored by its own job.
    items = await ek.persistence.items_of_stage(run.id, "score_chunks")
    assert [(item.item_index, item.status) for item in items] == [
        (0, Status.COMPLETED),
        (1, Status.COMPLETED),
    ]
    assert [item.output for item in items] == [
        {"score": 1.0, "hits": 2},
        {"score": -1.0, "hits": 1},
    ]


async def test_a_negative_document_is_flagged_for_review(ek: TestKernel) -> None:
    run = await ek.run(
        "document_processor", {"document": "Terrible service. The product failed and broke."}
    )
    assert run.status is Status.COMPLETED, run.error
    assert run.output["sentiment"] == "negative"
    assert "(flagged for review: negative document (sentiment score -1.0))" in run.output["summary"]
    review = await ek.persistence.get_stage(run.id, "review")
    assert review is not None and review.status is Status.COMPLETED


async def test_batch_pipeline_suspends_and_resumes(ek: TestKernel) -> None:
    run = await ek.run(
        "batch_embeddings",
        {"texts": ["hello world", "hello there", "goodbye moon"], "dimensions": 8},
    )
    assert run.status is Status.COMPLETED, run.error
    assert run.output["nearest"]["hello world"] == "hello there"
    types = ek.sink.types()
    assert types.count("stage:suspended") == 1 and types.count("workflow:completed") == 1
    # Its check reported progress with its one "not yet" (`polls_until_ready` = 1).
    assert types.count("stage:progress") == 1
    assert types.index("stage:suspended") < types.index("stage:progress")


async def test_invoice_pipeline_with_imported_types(ek: TestKernel) -> None:
    money = {"cents": 1000, "currency": "EUR"}
    run = await ek.run(
        "invoice",
        {
            "customer": {"name": "Ada", "email": "ada@example.com", "country": "DE"},
            "items": [{"description": "Widget", "quantity": 3, "unit_price": money}],
            "coupon": "WELCOME10",
        },
    )
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {
        "total": {"cents": 3270, "currency": "EUR"},
        "tax": {"cents": 570, "currency": "EUR"},
        "discount": {"cents": 300, "currency": "EUR"},
        "lines": 1,
    }


async def test_example_input_is_checked_against_the_compiled_model(ek: TestKernel) -> None:
    with pytest.raises(InvalidRunInputError) as caught:
        await ek.create_run("invoice", {"customer": {"name": "", "email": "nope"}, "items": []})
    assert caught.value.problems == [
        "customer.name: String should have at least 1 character",
        "customer.email: Value error, not an email address",
        "customer.country: Field required",
        "items: List should have at least 1 item after validation, not 0",
    ]


async def _waiting_post(ek: TestKernel) -> str:
    """A post drafted, its run waiting for the editor (no worker holds it)."""
    run_id = await ek.create_run("approval", {"title": "Hello, World!", "text": "First post."})
    await ek.kernel.dispatch(RunClaimPending(worker_id="w1"))
    assert await ek.work() == 1
    approval = await ek.persistence.get_stage(run_id, "approval")
    assert approval is not None and approval.status is Status.SUSPENDED
    assert approval.suspended_state is not None
    assert approval.suspended_state["signal"] == "approve"
    return run_id


async def test_an_approved_post_is_published(ek: TestKernel) -> None:
    run_id = await _waiting_post(ek)
    sent = await ek.kernel.dispatch(
        RunSignal(workflow_run_id=run_id, name="approve", payload={"approved": True, "by": "ana"})
    )
    assert sent.delivered_to is not None
    assert await ek.work() == 1
    run = await ek.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED, run
    assert run.output == {
        "published": True,
        "url": "https://blog.example.com/hello-world",
        "note": "approved by ana",
    }


async def test_a_post_nobody_decides_on_stays_a_draft_after_7_days(ek: TestKernel) -> None:
    run_id = await _waiting_post(ek)
    ek.clock.advance(days=7)
    assert await ek.work() == 2  # the timeout (the wait ends with null), then `publish`
    run = await ek.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED
    assert run.output == {
        "published": False,
        "url": None,
        "note": "no decision within 7 days: kept as a draft",
    }
