"""The YAML form gives the same workflow as the `.wf` text, and its own diagnostics point into it."""

from __future__ import annotations

from pathlib import Path

from tests.fuzzing import YAML_SEED
from wfc.compiler.driver import analyse
from wfc.compiler.lower import lower

WF = """workflow reviews {
  name "Reviews"
  enum Mood { happy, sad }
  type Score { value: float (0.0 .. 1.0), label: str? }
  input { text: str (len >= 1), language: str = "en" }
  output { mood: Mood, score: Score }
  stage clean "Clean" {
    input { text: str, language: str }
    output { text: str }
    retry 3 times, backoff exponential 1s x2 max 1m
    timeout 2m
  }
  async stage judge "Judge" {
    input from clean
    output { mood: Mood, score: Score }
    config { threshold: float = 0.5 }
    poll every 1m, give up after 24h
    priority 7
  }
  stage tally { input none  needs clean, judge  output { mood: Mood, score: Score } }
  flow clean -> judge -> tally
}
"""

YAML = YAML_SEED  # the same workflow as WF above, in the YAML form


def test_yaml_and_wf_give_the_same_plan(tmp_path: Path) -> None:
    (tmp_path / "reviews.wf").write_text(WF)
    (tmp_path / "reviews.wf.yaml").write_text(YAML)
    from_wf, wf_problems = analyse(tmp_path / "reviews.wf")
    from_yaml, yaml_problems = analyse(tmp_path / "reviews.wf.yaml")
    assert wf_problems == [] and yaml_problems == []
    assert from_wf is not None and from_yaml is not None
    assert lower(from_yaml).content() == lower(from_wf).content()


def test_invalid_yaml_is_wf120(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text("workflow: {id: x, stages: [\n")
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF120"]
    assert "invalid YAML" in problems[0].message


def test_a_wrong_shape_is_wf121_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text("workflow:\n  id: x\n  stages: [a, b]\n")
    _, problems = analyse(path)
    assert problems and problems[0].code == "WF121"
    span = problems[0].span
    assert span is not None and span.file.line_col(span.start)[0] == 3


def test_a_bad_type_inside_a_scalar_points_into_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text(YAML.replace('value: "float (0.0 .. 1.0)"', 'value: "flaot (0.0 .. 1.0)"'))
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF201"]
    span = problems[0].span
    assert span is not None and span.file.line_col(span.start) == (5, 27)
