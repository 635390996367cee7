"""Records built by filling a same-layout twin's slots (`quick_init`'s `__init__` for
classes of more than three fields, `record_builders.builder`, `copies.changed`) are the records
`dataclass` builds: same class, fields, defaults and factories, and still frozen."""

from __future__ import annotations

import gc
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from wfc.runtime.copies import changed
from wfc.runtime.job_records import JobSpec
from wfc.runtime.record_builders import builder, quick_init
from wfc.runtime.records import StageRecord, Status

NOW = datetime(2026, 1, 2, tzinfo=UTC)
STAGE: dict[str, Any] = {
    "id": "s-1",
    "run_id": "r-1",
    "stage_id": "a",
    "stage_name": "A",
    "stage_number": 1,
    "execution_group": 1,
    "status": Status.PENDING,
    "config": {"k": 1},
    "created_at": NOW,
    "updated_at": NOW,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plain:
    name: str
    count: int = 0
    kind: str = "k"
    tags: list[str] = field(default_factory=lambda: ["first"])


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class _Lent:
    name: str
    count: int = 0
    kind: str = "k"
    tags: list[str] = field(default_factory=lambda: ["first"])


@dataclass(frozen=True, slots=True, kw_only=True)
class _Wider(_Lent):
    extra: int = 7


class _Same(_Lent):
    """A subclass that inherits the quick `__init__` (a dataclass writes its own)."""

    __slots__ = ()


def test_a_record_built_in_a_twin_is_the_dataclass_record_and_stays_frozen() -> None:
    lent = _Lent(name="a", count=2)
    assert repr(lent) == repr(_Plain(name="a", count=2)).replace("_Plain", "_Lent")
    assert type(lent) is _Lent and lent.tags == ["first"]
    assert lent.tags is not _Lent(name="b").tags
    with pytest.raises(FrozenInstanceError):
        lent.name = "c"  # type: ignore[misc]
    row = StageRecord(**STAGE)
    assert type(row) is StageRecord and row.metrics == {} and row.version == 1
    assert row == builder(StageRecord)(**STAGE)


def test_a_subclass_instance_is_built_by_the_setters_and_keeps_its_class() -> None:
    same = _Same(name="a", count=1)
    assert type(same) is _Same and (same.name, same.count, same.tags) == ("a", 1, ["first"])
    wider = _Wider(name="a", extra=3)
    assert type(wider) is _Wider
    assert (wider.name, wider.count, wider.kind, wider.tags, wider.extra) == (
        "a",
        0,
        "k",
        ["first"],
        3,
    )


def test_a_builder_takes_the_class_keywords_and_refuses_others() -> None:
    build = builder(JobSpec)
    assert builder(JobSpec) is build  # made once per class
    spec = build(run_id="r", workflow_id="w", stage_id="a", priority=5, max_attempts=3)
    assert type(spec) is JobSpec
    assert spec == JobSpec(run_id="r", workflow_id="w", stage_id="a", priority=5, max_attempts=3)
    assert (
        spec.payload == {}
        and spec.payload
        is not build(run_id="r", workflow_id="w", stage_id="a", priority=5, max_attempts=3).payload
    )
    with pytest.raises(TypeError):
        build(run_id="r", workflow_id="w", stage_id="a", priority=5, max_attempts=3, nope=1)
    with pytest.raises(TypeError):
        build(run_id="r")
    with pytest.raises(FrozenInstanceError):
        spec.priority = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="slotted record"):
        builder(_Wider)


def test_a_changed_copy_is_a_record_of_the_same_class_with_the_changes() -> None:
    row = StageRecord(**STAGE)
    copy = changed(row, {"status": Status.RUNNING, "attempt": 2})
    assert type(copy) is StageRecord
    assert copy == StageRecord(**STAGE | {"status": Status.RUNNING}, attempt=2)
    assert row.status is Status.PENDING  # the original is untouched
    with pytest.raises(FrozenInstanceError):
        copy.attempt = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field"):
        changed(row, {"nope": 1})
    wider = changed(_Wider(name="a"), {"extra": 1, "count": 4})
    assert type(wider) is _Wider and (wider.extra, wider.count, wider.name) == (1, 4, "a")


class _Counted(dict[str, Any]):
    """Changes that count how they are read."""

    reads = 0

    def __getitem__(self, key: str) -> Any:
        _Counted.reads += 1
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        _Counted.reads += 1
        return super().__contains__(key)


def test_a_copy_reads_the_changes_once_per_changed_field_in_any_order() -> None:
    """One copier per class and set of changed fields: the other fields are copied
    without asking the changes about each (29 questions for a stage row, every write)."""
    row = StageRecord(**STAGE)
    _Counted.reads = 0
    copy = changed(row, _Counted(attempt=2, status=Status.RUNNING))
    assert _Counted.reads == 2
    assert copy == changed(row, {"status": Status.RUNNING, "attempt": 2})
    assert copy == StageRecord(**STAGE | {"status": Status.RUNNING}, attempt=2)
    assert changed(row, {}) == row


@dataclass(frozen=True, slots=True, kw_only=True)
class _Wide:
    """Enough fields for more sets of two changed ones than copiers are kept per class."""

    f0: int = 0
    f1: int = 1
    f2: int = 2
    f3: int = 3
    f4: int = 4
    f5: int = 5
    f6: int = 6
    f7: int = 7
    f8: int = 8
    f9: int = 9
    f10: int = 10
    f11: int = 11
    f12: int = 12
    f13: int = 13
    f14: int = 14
    f15: int = 15
    f16: int = 16


def test_past_the_copiers_kept_a_copy_is_still_right_and_makes_no_garbage() -> None:
    row = _Wide()
    names = [column.name for column in fields(_Wide)]
    pairs = [(a, b) for a in names for b in names if a != b]
    assert len(pairs) > 256
    for a, b in pairs:
        assert changed(row, {a: 100, b: 200}) == replace(row, **{a: 100, b: 200})
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for a, b in pairs:  # every copier is made by now: none is made per call
            changed(row, {b: 1, a: 2})
        assert gc.get_count()[0] - before < 10
    finally:
        gc.enable()
    with pytest.raises(TypeError, match="no field"):
        changed(row, {"f0": 1, "nope": 2})


class _Mixin:
    __slots__ = ()

    def label(self) -> str:
        return "mixed"


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class _Mixed(_Mixin):
    """A record with a base besides `object`: its layout is not its twin's, so it is built
    and copied through its slots' setters."""

    name: str
    count: int = 0
    kind: str = "k"
    tags: list[str] = field(default_factory=list)


def test_a_record_with_a_base_of_its_own_is_built_and_copied_without_a_twin() -> None:
    made = _Mixed(name="a", count=1)
    assert (made.name, made.count, made.label()) == ("a", 1, "mixed")
    assert changed(made, {"count": 2}) == _Mixed(name="a", count=2)
    with pytest.raises(TypeError, match="not a slotted record"):
        builder(_Mixed)
