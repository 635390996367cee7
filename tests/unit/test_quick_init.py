"""`quick_init`: a frozen, slotted record built by its slots' own setters is the record
`dataclass` would have built, with the same signature."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import StageRecord, Status, WorkerRecord

NOW = datetime(2026, 1, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plain:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=lambda: ["first"])


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class _Quick:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=lambda: ["first"])


def test_the_same_value_and_signature_as_the_dataclass_init() -> None:
    assert _Quick(name="a").__repr__() == _Plain(name="a").__repr__().replace("_Plain", "_Quick")
    assert _Quick(name="a", count=2, tags=[]) == _Quick(name="a", count=2, tags=[])
    quick = inspect.signature(_Quick.__init__).parameters
    plain = inspect.signature(_Plain.__init__).parameters
    assert [(p.name, p.kind) for p in quick.values()] == [(p.name, p.kind) for p in plain.values()]
    assert _Quick.__init__.__qualname__ == "_Quick.__init__"
    with pytest.raises(TypeError):
        _Quick(name="a", cout=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Quick("a")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Quick()  # type: ignore[call-arg]


def test_a_default_factory_makes_a_value_per_record_and_the_record_stays_frozen() -> None:
    first, second = _Quick(name="a"), _Quick(name="b")
    assert first.tags == ["first"] and first.tags is not second.tags
    with pytest.raises(AttributeError):
        first.name = "c"  # type: ignore[misc]
    row = StageRecord(
        id="s-1",
        run_id="r-1",
        stage_id="a",
        stage_name="A",
        stage_number=1,
        execution_group=1,
        status=Status.PENDING,
        config={},
        created_at=NOW,
        updated_at=NOW,
    )
    assert row.metrics == {} and row.version == 1 and row.items_failed == 0
    worker = WorkerRecord(worker_id="w", plans=[], started_at=NOW, seen_at=NOW, expires_at=NOW)
    assert worker.queues == ["default"]


def test_a_class_it_cannot_build_the_same_way_is_refused() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class _Checked:
            name: str

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="mixes"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class _Mixed:
            name: str
            count: int = field(default=0, kw_only=True)
