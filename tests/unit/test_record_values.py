"""`rows.to_values`: a record's fields as column values, enums by their value, the same
as walking the fields one by one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from wfc.runtime.adapters.sql.rows import to_values
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import RunRecord, StageRecord, Status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _walked(record: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return {k: (v.value if isinstance(v, Status) else v) for k, v in values.items()}


def _filled(kind: type[Any], **given: Any) -> Any:
    """A record of `kind` with a value of its own in every field `given` does not set."""
    values: dict[str, Any] = {}
    for number, f in enumerate(dataclasses.fields(kind)):
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            values[f.name] = f"value-{number}"
    return kind(**values)


def test_values_are_the_fields_walked() -> None:
    for kind in (RunRecord, StageRecord, JobRecord):
        for status in (Status.PENDING, Status.RUNNING, Status.COMPLETED):
            record = _filled(kind, status=status, created_at=NOW, updated_at=NOW)
            values = to_values(record)
            assert values == _walked(record)
            assert list(values) == [f.name for f in dataclasses.fields(kind)]
            assert values["status"] == status.value
            assert type(values["status"]) is str


def test_a_status_in_any_field_is_stored_by_value() -> None:
    """Not only `status`: any field holding a `Status` is stored by its value, as before."""
    record = _filled(StageRecord, status=Status.RUNNING, stage_name=Status.FAILED)
    values = to_values(record)
    assert values["stage_name"] == "FAILED"
    assert values == _walked(record)


def test_other_values_are_the_records_own() -> None:
    payload = {"config": {"a": {"n": 1}}}
    record = _filled(JobRecord, status=Status.PENDING, payload=payload)
    assert to_values(record)["payload"] is payload
