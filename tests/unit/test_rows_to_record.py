"""`rows.to_record`, written out per record class and prefix: the record the class builds
from the same values, and the same errors for a row it cannot read."""

from __future__ import annotations

import dataclasses

import pytest

from wfc.runtime.adapters.sql.rows import to_record, to_values
from wfc.runtime.records import RunRecord, Status
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run


def test_a_record_read_from_its_row_is_the_record_written() -> None:
    """With and without a prefix: equal, of the class itself, its status a `Status` member
    (the row holds its text), every field the row's."""
    run = a_run(FakeClock(), "r")
    row = to_values(run)
    assert row["status"].__class__ is str
    for prefix in ("", "runs_"):
        read = to_record(RunRecord, {prefix + key: value for key, value in row.items()}, prefix)
        assert read == run
        assert read.__class__ is RunRecord
        assert read.status is run.status and read.status.__class__ is Status
        assert dataclasses.asdict(read) == dataclasses.asdict(run)
        with pytest.raises(dataclasses.FrozenInstanceError):
            read.status = Status.FAILED  # type: ignore[misc]


def test_a_row_it_cannot_read_fails_as_the_class_would() -> None:
    """A column missing is a `KeyError`, a status that is none of the members' a
    `ValueError` (from `Status` itself)."""
    row = to_values(a_run(FakeClock(), "r"))
    with pytest.raises(KeyError):
        to_record(RunRecord, {key: value for key, value in row.items() if key != "input"})
    with pytest.raises(ValueError, match="NOT_A_STATUS"):
        to_record(RunRecord, row | {"status": "NOT_A_STATUS"})
    assert to_record(RunRecord, row | {"status": Status.FAILED}).status is Status.FAILED
