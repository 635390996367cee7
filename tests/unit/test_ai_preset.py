"""The `ai` preset: three config fields with the given defaults, the same from YAML, and
diagnostics for clashes, repeats and values out of range."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler import ast
from wfc.compiler.driver import analyse
from wfc.compiler.lower import lower
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile

WF = """workflow w {
  input { text: str }
  output { summary: str }
  stage summarize {
    input { text: str }
    output { summary: str }
    config { style: str = "short" }
    ai "gpt-4o-mini", temperature 0.2, max tokens 300
  }
  flow summarize
}
"""

YAML = """workflow:
  id: w
  input: {text: str}
  output: {summary: str}
  stages:
    summarize:
      input: {text: str}
      output: {summary: str}
      config: {style: 'str = "short"'}
      ai: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 300}
  flow: summarize
"""


def plan_of(tmp_path: Path, name: str, text: str) -> dict[str, object]:
    path = tmp_path / name
    path.write_text(text)
    checked, problems = analyse(path)
    assert problems == [] and checked is not None
    return lower(checked).content()


def stage_config(content: dict[str, object]) -> dict[str, object]:
    stages = content["stages"]
    assert isinstance(stages, list)
    return dict(stages[0]["config_defaults"])


def test_the_preset_adds_model_temperature_and_max_tokens_to_the_config(tmp_path: Path) -> None:
    content = plan_of(tmp_path, "w.wf", WF)
    assert stage_config(content) == {
        "style": "short",
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 300,
    }
    schema = content["stages"][0]["config_schema"]  # type: ignore[index]
    assert schema["properties"]["temperature"]["maximum"] == 2.0


def test_defaults_when_only_the_model_is_given(tmp_path: Path) -> None:
    text = WF.replace(", temperature 0.2, max tokens 300", "").replace(
        '    config { style: str = "short" }\n', ""
    )
    assert stage_config(plan_of(tmp_path, "w.wf", text)) == {
        "model": "gpt-4o-mini",
        "temperature": 0.7,
        "max_tokens": 1024,
    }


def test_yaml_gives_the_same_plan(tmp_path: Path) -> None:
    assert plan_of(tmp_path, "w.wf.yaml", YAML) == plan_of(tmp_path, "w.wf", WF)


def test_the_printer_keeps_the_preset() -> None:
    module = parse_source(SourceFile(path=Path("w.wf"), text=WF))
    assert isinstance(module, ast.Module)
    printed = print_module(module)
    assert 'ai "gpt-4o-mini", temperature 0.2, max tokens 300' in printed
    assert parse_source(SourceFile(path=Path("w.wf"), text=printed)) == module


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ('config { style: str = "short", model: str }', "WF203", "duplicate field `model`"),
        ('config { style: str }\n    ai "x"', "WF208", "`ai` is given more than once"),
    ],
)
def test_clashes_and_repeats(tmp_path: Path, change: str, code: str, fragment: str) -> None:
    path = tmp_path / "w.wf"
    path.write_text(WF.replace('config { style: str = "short" }', change))
    _, problems = analyse(path)
    assert [(p.code, fragment in p.message) for p in problems] == [(code, True)]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("temperature 3", "temperature must be a number between 0 and 2"),
        ("max tokens 0", "max tokens must be a whole number at least 1"),
        ("max tokens 1.5", "max tokens must be a whole number"),
    ],
)
def test_values_out_of_range_are_wf310(tmp_path: Path, option: str, fragment: str) -> None:
    path = tmp_path / "w.wf"
    path.write_text(WF.replace("temperature 0.2, max tokens 300", option))
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF310"]
    assert fragment in problems[0].message


def test_the_builder_has_the_same_preset_as_a_base_config() -> None:
    from wfc.runtime import AIConfig

    class Summarise(AIConfig):
        model: str = "gpt-4o-mini"
        style: str = "short"

    assert Summarise().model_dump() == {
        "model": "gpt-4o-mini",
        "temperature": 0.7,
        "max_tokens": 1024,
        "style": "short",
    }
