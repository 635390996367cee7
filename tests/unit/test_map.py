"""`map`: parsing and printing, the checks, lowering to the Plan, YAML, generated code, graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ruff_runs import ruff
from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.driver import analyse, compile_path
from wfc.compiler.graph_render import to_dot, to_mermaid
from wfc.compiler.lower import lower
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile
from wfc.plan import InputSource, ItemFailure, MapSpec, Plan

CRAWL = """workflow crawl {
  enum Label { article, listing, other }
  type Page { url: url, title: str }
  input { site: url, seeds: list[str] = [], strict: bool = false }
  output { articles: int }

  stage split { input { site: url } output { pages: list[Page], count: int } }
  stage classify "Classify Page" {
    map split.pages, at most 16 at once, on failure continue
    output { label: Label }
  }
  stage tally {
    input none
    needs classify
    output { articles: int }
  }
  flow split -> classify -> tally
}
"""


def _write(tmp_path: Path, source: str, name: str = "case.wf") -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


def _plan(tmp_path: Path, source: str, name: str = "case.wf") -> Plan:
    checked, diagnostics = analyse(_write(tmp_path, source, name))
    assert checked is not None, [d.message for d in diagnostics]
    return lower(checked)


def _diagnostics(tmp_path: Path, source: str, name: str = "case.wf") -> list[Diagnostic]:
    return analyse(_write(tmp_path, source, name))[1]


def _codes(tmp_path: Path, source: str) -> list[str]:
    return [d.code for d in _diagnostics(tmp_path, source)]


def _under(d: Diagnostic) -> str:
    assert d.span is not None
    return d.span.file.text[d.span.start : d.span.end]


def _stage(source: str, index: int = 0) -> ast.Stage:
    module = parse_source(SourceFile(path=Path("x.wf"), text=source))
    assert isinstance(module, ast.Module), module
    return module.workflows[0].stages[index]


# -- syntax ----------------------------------------------------------------------------


def test_map_parses_with_its_options_in_any_order() -> None:
    first = _stage("workflow w { stage s { map a.b.c, at most 3 at once, on failure fail } }")
    second = _stage("workflow w { stage s { map a.b.c, on failure fail, at most 3 at once } }")
    assert first == second
    (spec,) = first.maps
    assert [p.value for p in spec.over.parts] == ["a", "b", "c"]
    assert [a.value for a in spec.at_most] == [3]
    assert [p.value for p in spec.on_failure] == ["fail"]


def test_a_bare_map_has_no_options() -> None:
    (spec,) = _stage("workflow w { stage s { map input.urls } }").maps
    assert spec.over.text == "input.urls" and spec.at_most == () and spec.on_failure == ()


def test_the_printer_writes_map_back_to_the_same_tree() -> None:
    module = parse_source(SourceFile(path=Path("x.wf"), text=CRAWL))
    assert isinstance(module, ast.Module)
    printed = print_module(module)
    assert "    map split.pages, at most 16 at once, on failure continue\n" in printed
    again = parse_source(SourceFile(path=Path("y.wf"), text=printed))
    assert again == module


def test_words_of_map_are_still_names_elsewhere(tmp_path: Path) -> None:
    # `at`, `most`, `once` and `failure` are keywords only after `map`.
    source = CRAWL.replace("title: str", "title: str, at: int?, most: int?, once: bool?")
    assert _codes(tmp_path, source) == []


@pytest.mark.parametrize(
    ("written", "message", "under"),
    [
        # the next setting's keyword is read as the path, then its `{` is the slip
        ("map", "`map` needs the path of a list", "{"),
        ("map split.pages at most 3 at once", "separate the options of `map` with commas", "at"),
        # a slip at the end of a line is reported there, where the missing words go
        ("map split.pages, at most 3", "write the limit as `at most <n> at once`", "\n"),
        ("map split.pages, on failure", "`on failure` takes `fail` or `continue`", "{"),
        ("map split.pages,", "a `,` after the path of `map` starts an option", "\n"),
    ],
)
def test_slips_in_map_get_a_named_message(
    tmp_path: Path, written: str, message: str, under: str
) -> None:
    source = CRAWL.replace("map split.pages, at most 16 at once, on failure continue", written)
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF101" and diagnostic.message == message
    assert _under(diagnostic) == under


def test_a_condition_slip_is_not_blamed_on_map(tmp_path: Path) -> None:
    source = CRAWL.replace("    needs classify\n", "    needs classify\n    when split.count at\n")
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF101" and "map" not in diagnostic.message


# -- lowering ----------------------------------------------------------------------------


def test_a_mapped_stage_lowers_to_a_map_spec_and_the_item_input(tmp_path: Path) -> None:
    plan = _plan(tmp_path, CRAWL)
    stage = plan.stage("classify")
    assert stage.map == MapSpec(
        over=("split", "pages"), at_most=16, on_item_failure=ItemFailure.CONTINUE
    )
    assert stage.input_source is InputSource.ITEM and stage.input_from is None
    # One item's schema: the `Page` record, and one item's output.
    assert stage.input_schema["title"] == "Page"
    assert set(stage.input_schema["properties"]) == {"url", "title"}
    assert stage.output_schema["title"] == "ClassifyOutput"
    assert Plan.from_json(plan.to_json()) == plan


def test_map_defaults_to_ten_at_once_and_failing(tmp_path: Path) -> None:
    plan = _plan(tmp_path, CRAWL.replace(", at most 16 at once, on failure continue", ""))
    assert plan.stage("classify").map == MapSpec(over=("split", "pages"))
    assert plan.stage("classify").map.at_most == 10  # type: ignore[union-attr]


def test_a_workflow_without_map_keeps_its_plan_bytes(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "    map split.pages, at most 16 at once, on failure continue\n", ""
    ).replace("needs classify", "needs split")
    assert '"map"' not in _plan(tmp_path, source).to_json()


@pytest.mark.parametrize(
    ("items", "declared", "schema"),
    [
        ("list[str]", "", {"type": "string"}),
        ("list[url]", "", {"type": "string", "format": "uri"}),
        ("list[str]", "input str", {"type": "string"}),
        ("list[url]", "input str", {"type": "string"}),
        ("list[list[int]]", "", {"type": "array", "items": {"type": "integer"}}),
        (
            "list[Label]",
            "",
            {
                "$ref": "#/$defs/Label",
                "$defs": {
                    "Label": {
                        "type": "string",
                        "enum": ["article", "listing", "other"],
                        "title": "Label",
                    }
                },
            },
        ),
    ],
)
def test_an_item_that_is_not_a_record_is_the_schema_of_one_value(
    tmp_path: Path, items: str, declared: str, schema: dict[str, object]
) -> None:
    source = CRAWL.replace("seeds: list[str] = []", f"seeds: {items} = []").replace(
        "map split.pages, at most 16 at once, on failure continue",
        f"map input.seeds {declared}",
    )
    stage = _plan(tmp_path, source).stage("classify")
    assert stage.input_source is InputSource.ITEM
    assert stage.input_schema == schema


def test_a_declared_record_input_takes_part_of_the_item(tmp_path: Path) -> None:
    source = CRAWL.replace("on failure continue", "on failure continue\n    input { url: str }")
    stage = _plan(tmp_path, source).stage("classify")
    assert stage.input_schema["title"] == "ClassifyInput"
    assert list(stage.input_schema["properties"]) == ["url"]


def test_a_mapped_stage_may_map_over_a_mapped_stage_that_fails_on_failure(
    tmp_path: Path,
) -> None:
    source = CRAWL.replace(", on failure continue", "").replace(
        "  stage tally {",
        "  stage enrich { map classify  output { label: Label, note: str } }\n  stage tally {",
    )
    source = source.replace("classify -> tally", "classify -> enrich -> tally")
    stage = _plan(tmp_path, source).stage("enrich")
    assert stage.map is not None and stage.map.over == ("classify",)
    assert stage.input_schema["title"] == "ClassifyOutput"


# -- checks --------------------------------------------------------------------------------


def test_mapping_over_the_results_of_a_continuing_stage_is_refused(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "  stage tally {",
        "  stage enrich { map classify  output { note: str } }\n  stage tally {",
    ).replace("classify -> tally", "classify -> enrich -> tally")
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF330"
    assert "holds results, not outputs" in diagnostic.message
    assert _under(diagnostic) == "classify"


def test_a_field_of_a_mapped_stage_is_not_a_path(tmp_path: Path) -> None:
    source = CRAWL.replace(", on failure continue", "").replace(
        "  stage tally {",
        "  stage enrich { map classify.label  output { note: str } }\n  stage tally {",
    )
    source = source.replace("classify -> tally", "classify -> enrich -> tally")
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF241" and _under(diagnostic) == "label"
    assert "`classify` is `list[ClassifyOutput]`, which has no fields" in diagnostic.message
    assert diagnostic.help is not None and "`map classify` runs over that list" in diagnostic.help


def test_a_condition_reads_a_mapped_stage_as_a_list(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "    needs classify\n", "    needs classify\n    when len(classify) > 0\n"
    )
    plan = _plan(tmp_path, source.replace("output { articles: int }\n  \n", ""))
    assert plan.stage("tally").when is not None
    with_field = CRAWL.replace(
        "    needs classify\n", "    needs classify\n    when classify.label == Label.article\n"
    )
    (diagnostic,) = [d for d in _diagnostics(tmp_path, with_field) if d.code != "WF413"]
    assert diagnostic.code == "WF231"
    assert "is `list[ItemResult[ClassifyOutput]]`, which has no fields" in diagnostic.message


def test_a_when_on_a_mapped_stage_is_decided_once(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "on failure continue\n", "on failure continue\n    when len(split.pages) > 2\n"
    )
    source = source.replace("needs classify", "needs split, classify?")
    plan = _plan(tmp_path, source)
    assert plan.stage("classify").when is not None and plan.stage("classify").map is not None
    reads_item = source.replace("when len(split.pages) > 2", 'when item.title == "x"')
    (diagnostic,) = _diagnostics(tmp_path, reads_item)
    assert diagnostic.code == "WF230" and diagnostic.help is not None
    assert "decided once for the whole stage" in diagnostic.help


def test_a_skipped_list_maps_as_no_items(tmp_path: Path) -> None:
    # As the kernel does it: `split` skipped, `classify` runs over no items and completes
    # with an empty list, so `tally` needs it without `?` (and a `?` is never None).
    source = CRAWL.replace(
        "output { pages: list[Page], count: int } }",
        "output { pages: list[Page], count: int } when input.strict }\n"
        "  stage other { output { n: int } }",
    ).replace("needs classify", "needs other, classify")
    source = source.replace("flow split ->", "flow [split, other] ->")
    assert _codes(tmp_path, source) == []
    marked = source.replace("needs other, classify", "needs other, classify?")
    (diagnostic,) = _diagnostics(tmp_path, marked)
    assert diagnostic.code == "WF412" and "`classify` is never skipped" in diagnostic.message


def test_a_list_through_an_optional_field_may_be_mapped(tmp_path: Path) -> None:
    # A missing list (an optional field left out) maps as no items.
    source = CRAWL.replace("seeds: list[str] = []", "seeds: list[str]?").replace(
        "map split.pages, at most 16 at once, on failure continue", "map input.seeds"
    )
    assert _plan(tmp_path, source).stage("classify").input_schema == {"type": "string"}


def test_a_parallel_group_hands_on_a_mapped_stage_as_a_list(tmp_path: Path) -> None:
    source = """workflow w {
  type Tag { tag: str }
  input { words: list[str] }
  stage tag { map input.words  output Tag }
  stage count { output { n: int } }
  stage merge { input { tag: list[Tag], count: CountOut } output { n: int } }
  type CountOut { n: int }
  flow [tag, count] -> merge
}
""".replace("stage count { output { n: int } }", "stage count { output CountOut }")
    assert _codes(tmp_path, source) == []
    wrong = source.replace("tag: list[Tag]", "tag: Tag")
    (diagnostic,) = _diagnostics(tmp_path, wrong)
    assert diagnostic.code == "WF312" and "provides `list[Tag]`" in diagnostic.message


def test_a_stage_after_a_mapped_stage_alone_reads_it_with_needs(tmp_path: Path) -> None:
    source = CRAWL.replace("    input none\n    needs classify\n", "    input { label: Label }\n")
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF421" and "through the flow" in diagnostic.message
    assert diagnostic.help is not None and "`input none` with `needs classify`" in diagnostic.help


def test_a_reserved_context_name_cannot_be_a_stage_id(tmp_path: Path) -> None:
    source = CRAWL.replace("stage tally", "stage item").replace("-> tally", "-> item")
    assert _codes(tmp_path, source) == ["WF205"]


def test_map_given_twice_is_wf208(tmp_path: Path) -> None:
    source = CRAWL.replace("on failure continue\n", "on failure continue\n    map input.seeds\n")
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF208" and diagnostic.message == "`map` is given more than once"


def test_a_declared_scalar_input_must_fit_the_item(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "map split.pages, at most 16 at once, on failure continue", "map input.seeds input int"
    )
    (diagnostic,) = _diagnostics(tmp_path, source)
    assert diagnostic.code == "WF331" and _under(diagnostic) == "int"
    assert "each item of `input.seeds` is `str`" in diagnostic.message


def test_one_mistake_in_a_map_gives_one_diagnostic(tmp_path: Path) -> None:
    source = CRAWL.replace("map split.pages", "map split.pagse")
    assert _codes(tmp_path, source) == ["WF241"]


# -- YAML ------------------------------------------------------------------------------------

CRAWL_YAML = """workflow:
  id: crawl
  enums: {Label: [article, listing, other]}
  types: {Page: {url: url, title: str}}
  input: {site: url, seeds: "list[str] = []", strict: "bool = false"}
  output: {articles: int}
  stages:
    split: {input: {site: url}, output: {pages: "list[Page]", count: int}}
    classify:
      name: Classify Page
      map: {over: split.pages, at_most: 16, on_item_failure: continue}
      output: {label: Label}
    tally: {input: none, needs: classify, output: {articles: int}}
  flow: split -> classify -> tally
"""


def test_yaml_map_gives_the_same_plan(tmp_path: Path) -> None:
    from_wf = _plan(tmp_path, CRAWL)
    assert _plan(tmp_path, CRAWL_YAML, name="case.wf.yaml").content() == from_wf.content()
    short = CRAWL_YAML.replace(
        "map: {over: split.pages, at_most: 16, on_item_failure: continue}",
        "map: split.pages, at most 16 at once, on failure continue",
    )
    assert _plan(tmp_path, short, name="short.wf.yaml").content() == from_wf.content()


def test_a_yaml_map_error_points_into_the_yaml_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path, CRAWL_YAML.replace("over: split.pages", "over: split.pagse"), "c.wf.yaml"
    )
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF241" and diagnostic.location == f"{path.as_posix()}:11:25"
    assert diagnostic.help == "did you mean `pages`?"


@pytest.mark.parametrize(
    ("replacement", "code", "fragment"),
    [
        ("{at_most: 16}", "WF121", "`map` needs `over`"),
        ("{over: split.pages, at_mots: 16}", "WF121", "did you mean `at_most`?"),
        ("{over: split.pages, at_most: lots}", "WF332", "`at most` must be a whole number"),
        ("{over: split.pages, on_item_failure: skip}", "WF332", "unknown failure policy"),
    ],
)
def test_yaml_map_mistakes(tmp_path: Path, replacement: str, code: str, fragment: str) -> None:
    source = CRAWL_YAML.replace(
        "{over: split.pages, at_most: 16, on_item_failure: continue}", replacement
    )
    (diagnostic,) = _diagnostics(tmp_path, source, "case.wf.yaml")
    assert diagnostic.code == code
    assert fragment in diagnostic.message or fragment in (diagnostic.help or "")


# -- generated code and graph -------------------------------------------------------------------


def _compile(tmp_path: Path, source: str) -> tuple[Path, Plan]:
    result = compile_path(_write(tmp_path, source, "crawl.wf"), tmp_path / "out")
    assert result.ok and result.plan is not None, [d.message for d in result.diagnostics]
    return tmp_path / "out", result.plan


def test_the_context_types_a_mapped_need_as_a_list(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "  stage tally {",
        "  stage fail_fast { map input.seeds  output { n: int } }\n  stage tally {",
    )
    source = source.replace("-> classify ->", "-> [classify, fail_fast] ->")
    source = source.replace("needs classify", "needs classify, fail_fast")
    out, _ = _compile(tmp_path, source)
    stages = (out / "_stages.py").read_text()
    assert (
        "    def classify(self) -> list[ItemResult[ClassifyOutput]]:\n"
        '        """The results of `classify` in item order: each an output or an error."""\n'
        '        return self.item_results("classify", ClassifyOutput)\n'
    ) in stages
    assert (
        "    def fail_fast(self) -> list[FailFastOutput]:\n"
        '        """The outputs of `fail_fast` in item order, which this stage needs."""\n'
        '        return self.dependency_list("fail_fast", FailFastOutput)\n'
    ) in stages
    assert "    def item(self) -> Page:\n" in stages and "        return self.input\n" in stages
    assert "    def item(self) -> str:\n" in stages and "        return self.input.root\n" in stages
    assert "from wfc.runtime import ItemResult, Stage, StageContext\n" in stages
    models = (out / "_models.py").read_text()
    assert (
        'class FailFastInput(RootModel[str]):\n    """Input of stage `fail_fast`: one item of `input.seeds`."""\n'
        in models
    )
    stub = (out / "stages" / "classify.py").read_text()
    assert "It runs once per item of `split.pages`" in stub


def test_an_optional_mapped_need_is_a_list_or_none(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "on failure continue\n", "on failure continue\n    when len(split.pages) > 2\n"
    ).replace("needs classify", "needs split, classify?")
    out, _ = _compile(tmp_path, source)
    stages = (out / "_stages.py").read_text()
    assert "    def classify(self) -> list[ItemResult[ClassifyOutput]] | None:\n" in stages


def test_long_names_are_wrapped_as_ruff_formats_them(tmp_path: Path) -> None:
    # Long enough for the property's line to wrap; short enough for the other lines.
    long_id = "classify_all_the_pages"
    source = CRAWL.replace("classify", long_id)
    source = source.replace(f"needs {long_id}", f"needs split, {long_id}?").replace(
        "on failure continue\n", "on failure continue\n    when len(split.pages) > 2\n"
    )
    out, _ = _compile(tmp_path, source)
    assert (
        "    def classify_all_the_pages(\n        self,\n    ) -> "
        in (out / "_stages.py").read_text()
    )
    fmt = ruff("format", "--isolated", "--check", str(out))
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_graph_shows_the_map_and_where_its_list_comes_from(tmp_path: Path) -> None:
    source = CRAWL.replace(
        "  stage tally {",
        "  stage again { map split.pages  output { n: int } }\n  stage tally {",
    ).replace("classify -> tally", "classify -> again -> tally")
    source = source.replace("needs classify", "needs classify, again")
    plan = _plan(tmp_path, source)
    mermaid = to_mermaid(plan)
    assert (
        '  classify["Classify Page<br/>map over split.pages, ≤16, on failure continue"]\n'
        in mermaid
    )
    assert '  again["Again<br/>map over split.pages, ≤10"]\n' in mermaid
    assert "  split -. items .-> again\n" in mermaid
    assert "  split -. items .-> classify\n" not in mermaid  # the group just before
    dot = to_dot(plan)
    assert '"again" [label="Again\\nmap over split.pages, ≤10"];' in dot
    assert '"split" -> "again" [style=dashed, label="items"];' in dot
