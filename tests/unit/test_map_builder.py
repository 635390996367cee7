"""`map` from Python: the builder makes the plan the compiler makes and checks what it can;
a compiled mapped workflow runs with its generated context (`ctx.item`, typed lists)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, RootModel

from wfc.compiler.driver import compile_path
from wfc.plan import InputSource, ItemFailure, MapSpec
from wfc.runtime import WorkflowBuilder, define_stage, load_workflow
from wfc.runtime.records import Status
from wfc.testing import make_test_kernel


class Site(BaseModel):
    site: str
    seeds: list[str] = []
    maybe: list[str] | None = None


class Page(BaseModel):
    url: str
    title: str


class Pages(BaseModel):
    pages: list[Page]
    count: int


class Label(BaseModel):
    label: str


class Tally(BaseModel):
    articles: int


def noop(ctx: Any) -> dict[str, Any]:
    return {}


def _split() -> Any:
    return define_stage(id="split", input=Site, output=Pages, execute=noop)


def _classify(**settings: Any) -> Any:
    options: dict[str, Any] = {"map_over": "split.pages", "input": Page}
    options.update(settings)
    return define_stage(id="classify", output=Label, execute=noop, **options)


def test_a_mapped_stage_has_a_map_spec_and_takes_one_item() -> None:
    stage = _classify(at_most=16, on_item_failure="continue").plan
    assert stage.map == MapSpec(
        over=("split", "pages"), at_most=16, on_item_failure=ItemFailure.CONTINUE
    )
    assert stage.input_source is InputSource.ITEM and stage.input_from is None
    assert stage.input_schema == Page.model_json_schema()
    assert _classify(map_over=("split", "pages")).plan.map == MapSpec(over=("split", "pages"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"input": None}, "give input=, the model of one item"),
        ({"input_from": "split"}, "drop input_from"),
        ({"at_most": 0}, "at_most must be a whole number from 1 to 1000, not 0"),
        ({"at_most": True}, "at_most must be a whole number"),
        ({"on_item_failure": "skip"}, 'on_item_failure must be "fail" or "continue"'),
        ({"map_over": "split..pages"}, "map_over must be a path"),
        ({"map_over": ()}, "map_over must be a path"),
        ({"map_over": "classify.x"}, "maps over its own output"),
        ({"map_over": None, "at_most": 3}, "give map_over too"),
    ],
)
def test_define_stage_checks_a_map(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _classify(**settings)


def test_builder_and_compiler_agree_on_a_mapped_plan(tmp_path: Path) -> None:
    source = tmp_path / "crawl.wf"
    source.write_text(
        """workflow crawl {
  type Page { url: str, title: str }
  input { site: str, seeds: list[str] = [] }
  stage split { input { site: str } output { pages: list[Page], count: int } }
  stage classify { map split.pages, at most 16 at once, on failure continue output { label: str } }
  stage tally { input none needs classify output { articles: int } }
  flow split -> classify -> tally
}
"""
    )
    compiled = compile_path(source, check=True).plan
    assert compiled is not None
    built = (
        WorkflowBuilder("crawl", "Crawl", input=Site)
        .pipe(_split())
        .pipe(_classify(at_most=16, on_item_failure="continue"))
        .pipe(define_stage(id="tally", output=Tally, execute=noop, needs=["classify"]))
        .build()
        .plan
    )

    def shape(plan: Any) -> list[tuple[Any, ...]]:
        return [(s.id, s.input_source, s.input_from, s.needs, s.map) for s in plan.stages]

    assert shape(built) == shape(compiled) and built.groups == compiled.groups


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ("input.seeds", None),
        ("input.maybe", None),  # a missing list maps as no items
        ("input.site", '"input.site" is not a list'),
        ("input.nope", 'has no field "nope" \\(its fields: maybe, seeds, site\\)'),
        ("split.count", '"split.count" is not a list'),
        ("later.pages", 'neither "input" nor a stage added before it'),
    ],
)
def test_the_builder_follows_the_path_to_a_list(over: str, message: str | None) -> None:
    builder = WorkflowBuilder("w", "W", input=Site).pipe(_split())
    stage = _classify(map_over=over, input=RootModel[str])
    if message is None:
        builder.pipe(stage)
        return
    with pytest.raises(ValueError, match=message):
        builder.pipe(stage)


def test_a_mapped_stage_cannot_be_a_whole_input() -> None:
    builder = WorkflowBuilder("w", "W", input=Site).pipe(_split()).pipe(_classify())
    after = define_stage(id="after", input=Label, output=Tally, execute=noop)
    with pytest.raises(ValueError, match='give it needs=\\["classify"\\]'):
        builder.pipe(after)
    source = define_stage(
        id="after", input=Label, input_from="classify", output=Tally, execute=noop
    )
    with pytest.raises(ValueError, match='takes its input from "classify", a mapped stage'):
        WorkflowBuilder("w", "W", input=Site).pipe(_split()).pipe(_classify()).pipe(
            define_stage(id="mid", output=Tally, execute=noop)
        ).pipe(source)


def test_mapping_over_a_mapped_stage_takes_its_outputs() -> None:
    again = define_stage(id="again", map_over="classify", input=Label, output=Tally, execute=noop)
    WorkflowBuilder("w", "W", input=Site).pipe(_split()).pipe(_classify()).pipe(again)
    with pytest.raises(ValueError, match="whose list holds results"):
        WorkflowBuilder("w", "W", input=Site).pipe(_split()).pipe(
            _classify(on_item_failure="continue")
        ).pipe(again)


def test_a_mapped_last_group_gives_a_list_as_the_output_schema() -> None:
    built = WorkflowBuilder("w", "W", input=Site).pipe(_split()).pipe(_classify()).build()
    assert built.plan.output_schema["type"] == "array"
    results = (
        WorkflowBuilder("w", "W", input=Site)
        .pipe(_split())
        .pipe(_classify(on_item_failure="continue"))
        .build()
    )
    items = results.plan.output_schema["items"]
    assert "ItemResult" in items["$ref"]


# -- a compiled mapped workflow runs --------------------------------------------------------

CRAWL = """workflow crawl_run {
  enum Kind { article, listing }
  type Page { url: str, title: str }
  input { site: str, tags: list[str] = [] }
  output { articles: int, tags: list[str], failed: list[int] }

  stage split { input { site: str } output { pages: list[Page] } }
  stage classify { map split.pages, at most 2 at once, on failure continue output { kind: Kind } }
  stage shout { map input.tags output { tag: str } }
  stage tally {
    input none
    needs classify, shout
    output { articles: int, tags: list[str], failed: list[int] }
  }
  flow split -> [classify, shout] -> tally
}
"""

STUBS = {
    "split": """
    def execute(self, ctx: SplitContext) -> SplitOutput:
        pages = [Page(url=f"{ctx.input.site}/{n}", title=t) for n, t in enumerate(["a", "b", "!"])]
        return SplitOutput(pages=pages)
""",
    "classify": """
    def execute(self, ctx: ClassifyContext) -> ClassifyOutput:
        page: Page = ctx.item
        if page.title == "!":
            raise NonRetryableError("not a page")
        assert ctx.item_count == 3 and ctx.item_index == ["a", "b"].index(page.title)
        return ClassifyOutput(kind=Kind.article if page.title == "a" else Kind.listing)
""",
    "shout": """
    def execute(self, ctx: ShoutContext) -> ShoutOutput:
        tag: str = ctx.item
        return ShoutOutput(tag=tag.upper())
""",
    "tally": """
    def execute(self, ctx: TallyContext) -> TallyOutput:
        results: list[ItemResult[ClassifyOutput]] = ctx.classify
        articles = sum(1 for r in results if r.output is not None and r.output.kind == Kind.article)
        return TallyOutput(
            articles=articles,
            tags=[s.tag for s in ctx.shout],
            failed=[r.index for r in results if not r.ok],
        )
""",
}


@pytest.fixture
def compiled_package(tmp_path: Path) -> Iterator[str]:
    source = tmp_path / "crawl_run.wf"
    source.write_text(CRAWL)
    result = compile_path(source)
    assert result.ok, [d.message for d in result.diagnostics]
    package = tmp_path / "crawl_run"
    header = (
        "from __future__ import annotations\n\n"
        "from wfc.runtime import ItemResult, NonRetryableError\n\n"
        "from .._models import *  # noqa: F403\n"
        "from .._stages import *  # noqa: F403\n"
    )
    for stage, body in STUBS.items():
        name = "".join(part.title() for part in stage.split("_"))
        text = f"{header}\n\nclass {name}({name}Stage):{body}"
        (package / "stages" / f"{stage}.py").write_text(text)
    sys.path.insert(0, str(tmp_path))
    try:
        yield "crawl_run"
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == "crawl_run" or m.startswith("crawl_run.")]:
            del sys.modules[module]


async def test_a_compiled_mapped_workflow_runs(compiled_package: str) -> None:
    importlib.invalidate_caches()
    workflow = load_workflow(compiled_package)
    run = await make_test_kernel(workflow).run(
        "crawl_run", {"site": "https://example.com", "tags": ["x", "y"]}
    )
    assert run.status is Status.COMPLETED, run.output
    assert run.output == {"articles": 1, "tags": ["X", "Y"], "failed": [2]}
