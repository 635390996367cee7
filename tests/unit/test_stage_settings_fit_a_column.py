"""Stage settings the database keeps in 32-bit columns are checked against that size.

`priority`, a `retry` count, and `concurrency` and `rate` bounds are stored per job in
INTEGER columns; on PostgreSQL those are 32-bit. A file with `priority 3000000000` (or
`retry 3000000000 times`, `concurrency 3000000000`, `rate 3000000000 per minute`) passed
`wfc check` and ran on SQLite, but every run of it failed on PostgreSQL ("value out of
int32 range"). Now each is a diagnostic where it is written; the same at 2**31 - 1 works.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.driver import analyse

BIG = 2**31
LARGEST = 2**31 - 1


def _diagnostics(tmp_path: Path, setting: str) -> list[tuple[str, str]]:
    path = tmp_path / "settings.wf"
    path.write_text(
        "workflow settings {\n"
        "  input { x: str }\n"
        "  output { y: str }\n"
        f"  stage s {{ input none output {{ y: str }} {setting} }}\n"
        "  flow s\n"
        "}\n",
        encoding="utf-8",
    )
    _, diagnostics = analyse(path)
    return [(d.code, d.message) for d in diagnostics]


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        (f"priority {BIG}", "WF310"),
        (f"priority -{BIG + 1}", "WF310"),
        (f"retry {BIG} times", "WF310"),
        (f"concurrency {BIG}", "WF340"),
        (f"rate {BIG} per minute", "WF340"),
    ],
)
def test_a_setting_past_a_32_bit_column_is_a_diagnostic(
    tmp_path: Path, setting: str, code: str
) -> None:
    found = _diagnostics(tmp_path, setting)
    assert [c for c, _ in found] == [code], found
    assert str(LARGEST) in found[0][1], found


@pytest.mark.parametrize(
    "setting",
    [
        f"priority {LARGEST}",
        f"priority -{BIG}",
        f"retry {LARGEST} times",
        f"concurrency {LARGEST}",
        f"rate {LARGEST} per minute",
    ],
)
def test_the_largest_setting_a_column_holds_is_accepted(tmp_path: Path, setting: str) -> None:
    assert _diagnostics(tmp_path, setting) == []
