"""JSON a user types or points at (`--input`, `--config`, `--payload`), read so that no value
ends in a traceback: bad JSON, a file that is not UTF-8, nesting deeper than a run's data is
ever nested, or a number too long to read is each one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

MAX_DEPTH = 64
"""How deep arrays and objects may nest. Python's parser gives up near 1,000 levels, with a
`RecursionError`; the runtime walks values recursively too (validation, storage checks), so
input is held well below that."""


def read_json(value: str, option: str) -> Any:
    """The JSON `value` holds, or the file `@path` holds; a `click.BadParameter` (exit 2)
    saying what is wrong otherwise."""
    text = value
    if value.startswith("@"):
        text = _read_file(value[1:], option)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(
            f"not JSON ({error.msg} at line {error.lineno} column {error.colno})", param_hint=option
        ) from None
    except RecursionError:
        raise click.BadParameter(_too_deep(), param_hint=option) from None
    except ValueError as error:  # an integer of more digits than Python converts
        reason = str(error).split(";")[0]
        raise click.BadParameter(
            f"a number too long to read ({reason})", param_hint=option
        ) from None
    if _depth(parsed) > MAX_DEPTH:
        raise click.BadParameter(_too_deep(), param_hint=option)
    return parsed


def _read_file(path: str, option: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise click.BadParameter(
            f"cannot read {path}: {error.strerror or error}", param_hint=option
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise click.BadParameter(
            f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})",
            param_hint=option,
        ) from None


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _depth(value: Any) -> int:
    """How deep `value` nests (a scalar: 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def read_json_object(value: str | None, option: str) -> dict[str, Any]:
    """A JSON object given inline or as `@path` (`{}` when left out)."""
    if value is None:
        return {}
    parsed = read_json(value, option)
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return parsed


def read_config(value: str | None, option: str = "--config") -> dict[str, Any]:
    """Run config: a JSON object of stage ids, each mapped to an object of that stage's
    config fields."""
    config = read_json_object(value, option)
    for stage_id, fields in config.items():
        if not isinstance(fields, dict):
            raise click.BadParameter(
                f'stage {stage_id!r} must map to an object of its fields ({{"{stage_id}": '
                '{"field": value}})',
                param_hint=option,
            )
    return config
