"""`run.create` refuses what one database would refuse, on every database alike.

PostgreSQL refuses NUL in text, no UTF-8 driver sends a lone surrogate, a
priority is a 32-bit `integer` column and a key or run id a bounded string;
SQLite takes all of them. Each is refused when the command is made or
validated, with a message naming the field, and nothing is written: the same
answer on memory ports, a SQLite file and PostgreSQL (the `tk` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.kernel.helpers import DOC
from wfc.errors import InvalidRunInputError
from wfc.runtime import RunCreate
from wfc.testing import TestKernel

REFUSED_BY_THE_KERNEL = [
    pytest.param(
        {"input": {"text": "lone \ud800"}},
        "text: Input should be a valid string, unable to parse raw data as a unicode string",
        id="surrogate in input",
    ),
    pytest.param(
        {"input": {"text": "nul\x00here"}},
        "input.text: U+0000, which no database can store",
        id="NUL in input",
    ),
    pytest.param(
        {"input": {"text": "ok", "language": "e\x00n"}},
        "input.language: U+0000, which no database can store",
        id="NUL field 2",
    ),
    pytest.param(
        {"metadata": {"who": "a\x00b"}},
        "metadata.who: U+0000, which no database can store",
        id="NUL in metadata",
    ),
    pytest.param(
        {"metadata": {"who": "a\ud800b"}},
        "metadata.who: U+D800, which no database can store",
        id="surrogate in metadata",
    ),
    pytest.param(
        {"metadata": {"k\x00": 1}},
        "metadata (a key): U+0000, which no database can store",
        id="NUL in a key",
    ),
]

REFUSED_WHEN_MADE = [
    pytest.param({"priority": 2**31}, "priority", id="priority 2^31"),
    pytest.param({"priority": -(2**31) - 1}, "priority", id="priority below -2^31"),
    pytest.param({"idempotency_key": ""}, "idempotency_key", id="empty key"),
    pytest.param({"idempotency_key": "k" * 201}, "idempotency_key", id="key of 201"),
    pytest.param({"idempotency_key": "a\x00b"}, "idempotency_key", id="NUL in key"),
    pytest.param({"idempotency_key": "a\udfffb"}, "idempotency_key", id="surrogate in key"),
    pytest.param({"run_id": "r" * 65}, "run_id", id="run id of 65"),
    pytest.param({"run_id": "r\x00"}, "run_id", id="NUL in run id"),
]


def _command(**changes: Any) -> dict[str, Any]:
    return {"type": "run.create", "idempotency_key": "k", "workflow_id": "linear", "input": DOC} | (
        changes
    )


@pytest.mark.parametrize(("changes", "says"), REFUSED_BY_THE_KERNEL)
async def test_values_no_database_stores_are_refused_before_anything_is_written(
    tk: TestKernel, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRunInputError) as refused:
        await tk.kernel.dispatch(_command(**changes))
    assert says in refused.value.problems
    assert await tk.persistence.list_runs() == []


@pytest.mark.parametrize(("changes", "field"), REFUSED_WHEN_MADE)
async def test_values_out_of_every_database_s_range_are_refused_by_the_command(
    tk: TestKernel, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        await tk.kernel.dispatch(_command(**changes))
    with pytest.raises(ValidationError, match=field):
        RunCreate.model_validate(_command(**changes))
    assert await tk.persistence.list_runs() == []


async def test_the_edges_of_each_range_are_stored_on_every_database(tk: TestKernel) -> None:
    for n, priority in enumerate((2**31 - 1, -(2**31))):
        await tk.kernel.dispatch(
            _command(idempotency_key=f"{n}" + "k" * 199, priority=priority, run_id=f"{n}" * 64)
        )
    runs = sorted(await tk.persistence.list_runs(), key=lambda run: run.id)
    assert [(run.id, run.priority) for run in runs] == [("0" * 64, 2**31 - 1), ("1" * 64, -(2**31))]
