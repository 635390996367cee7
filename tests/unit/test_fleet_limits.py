"""Queues, fleet limits and schedules from every front end: `.wf`, YAML and the Python builder
make the same plan, print back as they parse, and refuse the same mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wfc.compiler.driver import analyse, compile_path
from wfc.compiler.graph_render import to_dot, to_mermaid
from wfc.compiler.lower import lower
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile
from wfc.plan import (
    CatchUp,
    ConcurrencyLimit,
    Overlap,
    Plan,
    RateLimit,
    ScheduleSpec,
)
from wfc.runtime import WorkflowBuilder, define_stage

WF = """workflow reports {
  enum Language { en, fr }
  input { customer_id: str, document: str, language: Language = en }
  output { text: str }
  queue "batch"
  schedule nightly "0 6 * * *" in "Europe/Paris" {
    input { customer_id: "acme", document: "daily report", language: fr }
    catch up all
    overlap allow
  }
  schedule hourly "0 * * * *" { input { customer_id: "acme", document: "hourly" } }
  stage write {
    input { customer_id: str, document: str }
    output { text: str }
    queue "gpu"
    concurrency 2 per input.customer_id
    rate 50 per minute shared "openai"
  }
  stage check {
    input from write
    output { text: str }
    concurrency 4
    rate 5 per second
  }
  flow write -> check
}
"""

YAML = """workflow:
  id: reports
  enums: {Language: [en, fr]}
  input: {customer_id: str, document: str, language: "Language = en"}
  output: {text: str}
  queue: batch
  schedules:
    nightly:
      cron: "0 6 * * *"
      timezone: Europe/Paris
      input: {customer_id: acme, document: daily report, language: fr}
      catch_up: all
      overlap: allow
    hourly: {cron: "0 * * * *", input: {customer_id: acme, document: hourly}}
  stages:
    write:
      input: {customer_id: str, document: str}
      output: {text: str}
      queue: gpu
      concurrency: 2 per input.customer_id
      rate: {max: 50, per: minute, shared: openai}
    check:
      input: from write
      output: {text: str}
      concurrency: {max: 4}
      rate: 5 per second
  flow: write -> check
"""


def _plan(tmp_path: Path, name: str, text: str) -> Plan:
    (tmp_path / name).write_text(text)
    checked, problems = analyse(tmp_path / name)
    assert problems == [] and checked is not None, problems
    return lower(checked)


def test_the_wf_text_lowers_to_the_plan_fields(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "reports.wf", WF)
    write, check = plan.stages
    assert plan.queue == "batch"
    assert write.queue == "gpu" and check.queue is None
    assert plan.queue_of("write") == "gpu" and plan.queue_of("check") == "batch"
    assert write.concurrency == ConcurrencyLimit(max=2, per=("input", "customer_id"))
    assert write.rate == RateLimit(max=50, window_ms=60_000, shared="openai")
    assert check.concurrency == ConcurrencyLimit(max=4)
    assert check.rate == RateLimit(max=5, window_ms=1000)
    assert plan.schedules == (
        ScheduleSpec(
            name="nightly",
            cron="0 6 * * *",
            timezone="Europe/Paris",
            input={"customer_id": "acme", "document": "daily report", "language": "fr"},
            catch_up=CatchUp.ALL,
            overlap=Overlap.ALLOW,
        ),
        ScheduleSpec(
            name="hourly", cron="0 * * * *", input={"customer_id": "acme", "document": "hourly"}
        ),
    )


def test_yaml_and_wf_give_the_same_plan(tmp_path: Path) -> None:
    from_wf = _plan(tmp_path, "reports.wf", WF)
    from_yaml = _plan(tmp_path, "reports.wf.yaml", YAML)
    assert from_yaml.content() == from_wf.content()


def test_a_yaml_limit_points_into_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text(YAML.replace("rate: 5 per second", "rate: 5 per sec"))
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF342"]
    assert problems[0].location.endswith("bad.wf.yaml:26:19")


def test_a_yaml_schedule_without_cron_is_wf121(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text(YAML.replace('{cron: "0 * * * *", input', "{input"))
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF121"] and "needs a `cron`" in problems[0].message


def test_print_then_parse_keeps_every_setting() -> None:
    first = parse_source(SourceFile(path=Path("a.wf"), text=WF))
    text = print_module(first)  # type: ignore[arg-type]
    assert parse_source(SourceFile(path=Path("b.wf"), text=text)) == first
    assert 'rate 50 per minute shared "openai"' in text
    assert 'schedule nightly "0 6 * * *" in "Europe/Paris" {' in text


def test_a_plan_without_them_keeps_its_json(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "reports.wf", WF)
    bare = plan.model_copy(
        update={
            "queue": None,
            "schedules": (),
            "stages": tuple(
                s.model_copy(update={"queue": None, "concurrency": None, "rate": None})
                for s in plan.stages
            ),
        }
    )
    for key in ("queue", "schedules"):
        assert key not in bare.content()
    for stage in bare.content()["stages"]:
        assert not {"queue", "concurrency", "rate"} & set(stage)


def test_the_graph_shows_limits_and_schedules(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "reports.wf", WF)
    mermaid = to_mermaid(plan)
    assert mermaid.startswith('---\ntitle: "queue batch · schedule nightly 0 6 * * * in ')
    assert "queue gpu, ≤2 at once per input.customer_id, ≤50/min shared openai" in mermaid
    assert "≤4 at once, ≤5/s" in mermaid
    assert "labelloc=t;" in to_dot(plan)


# -- the builder -------------------------------------------------------------------


class Who(BaseModel):
    id: str
    tags: list[str] = []


class Doc(BaseModel):
    customer_id: str
    document: str
    who: Who | None = None
    score: float = 0.0


class Text(BaseModel):
    text: str


def noop(ctx: Any) -> dict[str, Any]:
    return {}


def _write(**settings: Any) -> Any:
    return define_stage(id="write", input=Doc, output=Text, execute=noop, **settings)


def test_the_builder_makes_the_compiled_limits() -> None:
    nightly = ScheduleSpec(
        name="nightly",
        cron="0 6 * * *",
        timezone="Europe/Paris",
        input={"customer_id": "acme", "document": "daily report"},
    )
    workflow = (
        WorkflowBuilder("reports", "Reports", input=Doc, queue="batch", schedules=[nightly])
        .pipe(
            _write(
                queue="gpu",
                concurrency=2,
                concurrency_per="input.customer_id",
                rate="50 per minute",
                rate_shared="openai",
            )
        )
        .build()
    )
    stage = workflow.plan.stages[0]
    assert workflow.plan.queue == "batch" and workflow.plan.schedules == (nightly,)
    assert stage.queue == "gpu"
    assert stage.concurrency == ConcurrencyLimit(max=2, per=("input", "customer_id"))
    assert stage.rate == RateLimit(max=50, window_ms=60_000, shared="openai")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"queue": "gpu pool"}, "has characters it may not have"),
        ({"queue": ""}, "the queue name is empty"),
        ({"concurrency": 0}, "at least 1, not 0"),
        ({"concurrency_per": "input.customer_id"}, "needs concurrency= too"),
        ({"concurrency": 2, "concurrency_per": "write.text"}, 'starts at "input"'),
        ({"rate": "50 per minutes"}, 'read like "50 per minute"'),
        ({"rate": "0 per minute"}, "at least 1, not 0"),
        ({"rate": "5 per second", "rate_shared": "open ai"}, "may not have"),
        ({"rate_shared": "openai"}, "needs rate= too"),
    ],
)
def test_define_stage_checks_limits(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _write(**settings)


@pytest.mark.parametrize(
    ("per", "message"),
    [
        ("input.customer_id", None),
        ("input.who.id", None),
        ("input.who.idd", 'has no field "idd"'),
        ("input.who.tags", "must be one str, int, bool or enum field"),
        ("input.score", "must be one str, int, bool or enum field"),
    ],
)
def test_the_builder_follows_the_per_path(per: str, message: str | None) -> None:
    builder = WorkflowBuilder("reports", "Reports", input=Doc)
    stage = _write(concurrency=2, concurrency_per=per)
    if message is None:
        builder.pipe(stage)
    else:
        with pytest.raises(ValueError, match=message):
            builder.pipe(stage)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "0 25 * * *"}, "invalid cron expression '0 25 \\* \\* \\*': Bad hour"),
        ({"timezone": "Europe/Pariss"}, 'did you mean "Europe/Paris"'),
        ({"input": {"customer_id": "acme"}}, "not a valid workflow input"),
    ],
)
def test_the_builder_checks_schedules(schedule: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "name": "nightly",
        "cron": "0 6 * * *",
        "input": {"customer_id": "acme", "document": "d"},
    }
    spec = ScheduleSpec(**{**fields, **schedule})
    builder = WorkflowBuilder("reports", "Reports", input=Doc, schedules=[spec]).pipe(_write())
    with pytest.raises(ValueError, match=message):
        builder.build()


def test_the_builder_refuses_a_shared_rate_described_twice() -> None:
    other = define_stage(
        id="other", output=Text, execute=noop, rate="6 per minute", rate_shared="openai"
    )
    builder = (
        WorkflowBuilder("reports", "Reports", input=Doc)
        .pipe(_write(rate="5 per minute", rate_shared="openai"))
        .pipe(other)
    )
    with pytest.raises(ValueError, match='shared rate "openai" with different limits'):
        builder.build()


def test_compiled_package_loads_with_its_limits(tmp_path: Path) -> None:
    (tmp_path / "reports.wf").write_text(WF)
    result = compile_path(tmp_path / "reports.wf", tmp_path / "out")
    assert result.ok and result.plan is not None
    reread = Plan.from_json((tmp_path / "out" / "plan.json").read_text())
    assert reread == result.plan and reread.verify_fingerprint()
