"""Defaults past 2**53 are compared exactly with the field's bounds.

The check once converted every number to `float` and tested an absent `gt` bound as
`v > v - 1`: for a float of 1e16 or more `v - 1 == v`, so `y: float = 1e16` with no
constraint at all was refused as "outside the field's bounds" (WF302), and so was an
`int` default past 2**53, or one a bound differs from only beyond a float's precision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.driver import analyse


def _codes(tmp_path: Path, fields: str) -> list[str]:
    path = tmp_path / "big.wf"
    path.write_text(
        "workflow big {\n"
        f"  input {{ {fields} }}\n"
        "  output { y: str }\n"
        "  stage s { input none output { y: str } }\n"
        "  flow s\n"
        "}\n",
        encoding="utf-8",
    )
    _, diagnostics = analyse(path)
    return [d.code for d in diagnostics]


@pytest.mark.parametrize(
    "field",
    [
        "x: float = 1e16",
        "x: float = 1e308",
        "x: float = -1e300",
        "x: int = 9007199254740993",
        "x: int = -9223372036854775807",
        "x: int (< 9007199254740993) = 9007199254740992",
        "x: int (> 9007199254740992) = 9007199254740993",
        "x: float (<= 1e300) = 1e300",
    ],
)
def test_a_large_default_inside_its_bounds_is_accepted(tmp_path: Path, field: str) -> None:
    assert _codes(tmp_path, field) == []


@pytest.mark.parametrize(
    "field",
    [
        "x: int (< 9007199254740993) = 9007199254740993",
        "x: int (> 9007199254740992) = 9007199254740992",
        "x: float (< 1e300) = 1e300",
        "x: int (0 .. 10) = 11",
    ],
)
def test_a_large_default_outside_its_bounds_is_still_refused(tmp_path: Path, field: str) -> None:
    assert _codes(tmp_path, field) == ["WF302"]
