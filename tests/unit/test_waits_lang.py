"""Signals, durable sleeps and signal waits from every front end: `.wf`, YAML and the Python
builder make the same plan, print back as they parse, draw and diff as the runtime treats
them, and refuse the same mistakes, each at its line with its code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wfc.compiler.diff import diff_plans
from wfc.compiler.driver import analyse, compile_path
from wfc.compiler.graph_render import to_dot, to_mermaid
from wfc.compiler.lower import lower
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile
from wfc.plan import (
    SIGNAL_IMPLEMENTATION,
    SLEEP_IMPLEMENTATION,
    InputSource,
    Plan,
    SignalTimeout,
    SignalWait,
    SleepSpec,
)
from wfc.runtime import (
    WorkflowBuilder,
    define_signal,
    define_stage,
    sleep_stage,
    wait_stage,
)

WF = """workflow posts {
  input { text: str, publish_at: datetime }
  signal approve { approved: bool, by: str, note: str? }
  signal ping
  stage draft {
    input { text: str }
    output { text: str, ready_at: datetime }
  }
  stage cool_off { sleep 1h30m }
  stage embargo {
    needs draft
    sleep until draft.ready_at
  }
  stage approval { wait for approve, timeout 2d, on timeout continue }
  stage pinged { wait for ping, timeout 10m }
  stage go_live { sleep until input.publish_at }
  stage publish {
    input none
    needs draft, approval?, pinged
    output { url: str }
  }
  flow draft -> cool_off -> embargo -> [approval, pinged] -> go_live -> publish
}
"""

YAML = """workflow:
  id: posts
  input: {text: str, publish_at: datetime}
  signals:
    approve: {approved: bool, by: str, note: "str?"}
    ping: ~
  stages:
    draft: {input: {text: str}, output: {text: str, ready_at: datetime}}
    cool_off: {sleep: 1h30m}
    embargo: {needs: [draft], sleep: until draft.ready_at}
    approval: {wait_for: "approve, timeout 2d, on timeout continue"}
    pinged:
      wait_for: {signal: ping, timeout: 10m}
    go_live: {sleep: until input.publish_at}
    publish:
      input: none
      needs: [draft, "approval?", pinged]
      output: {url: str}
  flow: draft -> cool_off -> embargo -> [approval, pinged] -> go_live -> publish
"""


def _plan(tmp_path: Path, name: str, text: str, *, warned: tuple[str, ...] = ()) -> Plan:
    (tmp_path / name).write_text(text)
    checked, problems = analyse(tmp_path / name)
    assert [p.code for p in problems] == list(warned) and checked is not None, problems
    return lower(checked)


def test_the_wf_text_lowers_to_built_in_stages(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "posts.wf", WF)
    cool_off, embargo = plan.stage("cool_off"), plan.stage("embargo")
    approval, go_live = plan.stage("approval"), plan.stage("go_live")
    assert cool_off.implementation == SLEEP_IMPLEMENTATION
    assert cool_off.sleep == SleepSpec(duration_ms=5_400_000)
    assert embargo.sleep == SleepSpec(until=("draft", "ready_at"))
    assert go_live.sleep == SleepSpec(until=("input", "publish_at"))
    assert cool_off.output_schema["properties"] == {
        "woke_at": {"type": "string", "format": "date-time"}
    }
    assert approval.implementation == SIGNAL_IMPLEMENTATION
    assert approval.wait_for == SignalWait(
        signal="approve", timeout_ms=172_800_000, on_timeout=SignalTimeout.CONTINUE
    )
    assert approval.input_source is InputSource.NONE
    assert approval.output_schema["anyOf"][1] == {"type": "null"}
    assert plan.stage("pinged").wait_for == SignalWait(signal="ping", timeout_ms=600_000)
    assert plan.stage("publish").optional_needs == ("approval",)
    approve, ping = plan.signals
    assert approve.name == "approve" and ping.name == "ping"
    assert approve.payload_schema["required"] == ["approved", "by"]
    assert approve.payload_schema["additionalProperties"] is False
    assert ping.payload_schema["properties"] == {}


def test_yaml_and_wf_give_the_same_plan(tmp_path: Path) -> None:
    from_wf = _plan(tmp_path, "posts.wf", WF)
    from_yaml = _plan(tmp_path, "posts.wf.yaml", YAML)
    assert from_yaml.content() == from_wf.content()


def test_print_then_parse_keeps_every_setting() -> None:
    first = parse_source(SourceFile(path=Path("a.wf"), text=WF))
    text = print_module(first)  # type: ignore[arg-type]
    assert parse_source(SourceFile(path=Path("b.wf"), text=text)) == first
    assert "wait for approve, timeout 2d, on timeout continue" in text
    assert "sleep until draft.ready_at" in text and "signal ping\n" in text


def test_generated_code_types_the_outputs_and_has_no_stub_for_built_ins(tmp_path: Path) -> None:
    (tmp_path / "posts.wf").write_text(WF)
    result = compile_path(tmp_path / "posts.wf", tmp_path / "out")
    assert result.ok
    stubs = sorted(p.name for p in (tmp_path / "out" / "stages").glob("*.py"))
    assert stubs == ["__init__.py", "draft.py", "publish.py"]
    stages = (tmp_path / "out" / "_stages.py").read_text()
    assert "def approval(self) -> ApprovePayload | None:" in stages
    assert "def pinged(self) -> PingPayload:" in stages
    assert "class ApprovalContext" not in stages and '"approval",' in stages
    models = (tmp_path / "out" / "_models.py").read_text()
    assert "class ApprovePayload(BaseModel):" in models
    assert "class CoolOffOutput(BaseModel):" in models
    assert "woke_at: datetime.datetime" in models
    assert "class ApprovalInput" not in models and "class ApprovalConfig" not in models


def test_the_graph_says_what_each_built_in_waits_for(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "posts.wf", WF)
    mermaid = to_mermaid(plan)
    assert 'cool_off{{"Cool Off<br/>⏸ sleep 1h30m"}}' in mermaid
    assert "✉ wait for approve (2d → continue)" in mermaid
    assert "✉ wait for ping (10m → fail)" in mermaid
    assert "⏸ sleep until input.publish_at" in mermaid
    assert '"approval" [label="Approval\\n✉ wait for approve (2d → continue)", shape=hexagon];' in (
        to_dot(plan)
    )


# -- diagnostics ------------------------------------------------------------------------


def _wf(*items: str, flow: str) -> str:
    body = "\n  ".join(items)
    return f"workflow w {{\n  input {{ at: datetime?, n: int }}\n  {body}\n  flow {flow}\n}}\n"


SIGNAL = "signal approve { approved: bool }"
OK = "stage use { input none  needs wait  output { x: int } }"

CASES: list[tuple[str, str, str, str, str]] = [
    # (code, source, the text under the caret, in the message, in the help)
    (
        "WF250",
        _wf(SIGNAL, "stage wait { wait for aprove, timeout 1h }", flow="wait"),
        "aprove",
        "unknown signal `aprove`",
        "did you mean `approve`?",
    ),
    (
        "WF203",
        _wf(SIGNAL, "signal approve", "stage wait { wait for approve, timeout 1h }", flow="wait"),
        "approve",
        "duplicate signal `approve`",
        "rename or remove",
    ),
    (
        "WF251",
        _wf("stage nap { sleep until input.att }", flow="nap"),
        "att",
        "`input` has no field `att`",
        "did you mean `at`?",
    ),
    (
        "WF251",
        _wf("stage nap { sleep until inptu.at }", flow="nap"),
        "inptu",
        "unknown name `inptu`",
        "did you mean `input`?",
    ),
    (
        "WF380",
        _wf("stage nap { sleep until input.n }", flow="nap"),
        "input.n",
        "`input.n` is `int`, not `datetime`",
        "required `datetime`",
    ),
    (
        "WF380",
        _wf("stage nap { sleep until input.at }", flow="nap"),
        "input.at",
        "`input.at` is `datetime?`",
        "required `datetime`",
    ),
    (
        "WF307",
        _wf("stage nap { sleep 0s }", flow="nap"),
        "0s",
        "sleep must be longer than zero",
        "e.g. `30s`",
    ),
    (
        "WF307",
        _wf(SIGNAL, "stage wait { wait for approve, timeout 0m }", flow="wait"),
        "0m",
        "timeout must be longer than zero",
        "e.g. `30s`",
    ),
    (
        "WF381",
        _wf("stage nap { sleep 1h  output { x: int } }", flow="nap"),
        "{ x: int }",
        "stage `nap` sleeps, so it cannot have an `output`",
        "woke_at: datetime",
    ),
    (
        "WF381",
        _wf(SIGNAL, "stage wait { wait for approve, timeout 1h  input { x: int } }", flow="wait"),
        "{ x: int }",
        "cannot have an `input`",
        "it reads no input",
    ),
    (
        "WF381",
        _wf(SIGNAL, "stage wait { wait for approve  timeout 1h }", flow="wait"),
        "1h",
        "cannot have a stage `timeout`",
        "`wait for …, timeout 2d`",
    ),
    (
        "WF381",
        _wf("async stage nap { sleep 1h }", flow="nap"),
        "async",
        "cannot have `async`",
        "write `stage nap`",
    ),
    (
        "WF381",
        _wf("stage nap { sleep 1h  retry 3 times }", flow="nap"),
        "retry 3 times",
        "cannot have a `retry`",
        "nothing fails to retry",
    ),
    (
        "WF381",
        _wf("stage nap { sleep 1h  rate 5 per minute }", flow="nap"),
        "rate 5 per minute",
        "cannot have a `rate` limit",
        "nothing to limit",
    ),
    (
        "WF382",
        _wf(SIGNAL, "stage both { sleep 1h  wait for approve, timeout 1h }", flow="both"),
        "wait for approve, timeout 1h",
        "both sleeps and waits",
        "split it into two stages",
    ),
    (
        "WF383",
        _wf(SIGNAL, "stage wait { wait for approve, timeout 1h, on timeout skip }", flow="wait"),
        "skip",
        "unknown timeout policy `skip`",
        "`continue` goes on",
    ),
    (
        "WF383",
        _wf(SIGNAL, "stage wait { wait for approve, on timeout continue }", flow="wait"),
        "continue",
        "on a wait that has no timeout",
        "timeout 7d, on timeout continue",
    ),
    (
        "WF430",
        _wf(
            SIGNAL,
            "stage wait { wait for approve, timeout 1h, on timeout continue }",
            OK,
            flow="wait -> use",
        ),
        "wait",
        "stage `use` needs `wait`, a wait that may time out into null",
        "`needs wait?` (then `ctx.wait` is `ApprovePayload | None`)",
    ),
    (
        "WF430",
        _wf(
            SIGNAL,
            "stage wait { wait for approve, timeout 1h, on timeout continue }",
            "stage use { input { approved: bool }  output { x: int } }",
            flow="wait -> use",
        ),
        "{ approved: bool }",
        "takes its whole input from `wait`",
        "`input none` with `needs wait?`",
    ),
    (
        "WF431",
        _wf(
            "stage nap { sleep until make.at }",
            "stage make { output { at: datetime } }",
            flow="nap -> make",
        ),
        "make",
        "`make` runs after it",
        "move `make` before `nap`",
    ),
    (
        "WF208",
        _wf(SIGNAL, "stage wait { wait for approve, timeout 1h, timeout 2h }", flow="wait"),
        "2h",
        "`timeout` is given more than once",
        "keep one",
    ),
]


@pytest.mark.parametrize(
    ("code", "source", "under", "message", "help"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_mistake_has_its_code_place_and_help(
    tmp_path: Path, code: str, source: str, under: str, message: str, help: str
) -> None:
    path = tmp_path / "w.wf"
    path.write_text(source)
    _, problems = analyse(path)
    found = [p for p in problems if p.code == code]
    assert found, [(p.code, p.message) for p in problems]
    problem = found[0]
    assert problem.span is not None
    assert source[problem.span.start : problem.span.end] == under
    assert message in problem.message and problem.help is not None and help in problem.help
    assert problem.location.startswith(str(path)) and problem.location.count(":") >= 2


@pytest.mark.parametrize(
    ("items", "flow", "code"),
    [
        ((SIGNAL, "stage wait { wait for approve }"), "wait", "WF384"),
        ((SIGNAL, "signal ping", "stage wait { wait for approve, timeout 1h }"), "wait", "WF385"),
    ],
)
def test_warnings_do_not_fail_the_check(
    tmp_path: Path, items: tuple[str, ...], flow: str, code: str
) -> None:
    path = tmp_path / "w.wf"
    path.write_text(_wf(*items, flow=flow))
    checked, problems = analyse(path)
    assert [p.code for p in problems] == [code] and checked is not None


def test_a_continue_wait_in_a_parallel_group_hands_on_an_optional_field(tmp_path: Path) -> None:
    path = tmp_path / "w.wf"
    path.write_text(
        _wf(
            SIGNAL,
            "type Answer { approved: bool }",
            "stage wait { wait for approve, timeout 1h, on timeout continue }",
            "stage other { output { x: int } }",
            "stage use { input { wait: Answer }  output { x: int } }",
            flow="[wait, other] -> use",
        )
    )
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF312"]


def test_a_yaml_wait_points_into_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.wf.yaml"
    path.write_text(YAML.replace("signal: ping", "signal: pign"))
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF250"]
    assert problems[0].location.endswith("bad.wf.yaml:13:26")


# -- the builder ---------------------------------------------------------------------------


class Doc(BaseModel):
    text: str


class Decision(BaseModel):
    approved: bool
    by: str


class Out(BaseModel):
    url: str


def noop(ctx: Any) -> dict[str, Any]:
    return {}


def test_the_builder_makes_built_in_stages() -> None:
    approve = define_signal("approve", Decision)
    workflow = (
        WorkflowBuilder("posts", "Posts", input=Doc, signals=[approve])
        .pipe(define_stage(id="draft", input=Doc, output=Doc, execute=noop))
        .pipe(sleep_stage("cool_off", duration_ms=60_000))
        .pipe(wait_stage("approval", approve, timeout_ms=1000, on_timeout="continue"))
        .pipe(
            define_stage(
                id="publish", output=Out, execute=noop, needs=["draft"], optional_needs=["approval"]
            )
        )
        .build()
    )
    plan = workflow.plan
    assert plan.signals == (approve,)
    assert plan.stage("cool_off").sleep == SleepSpec(duration_ms=60_000)
    assert plan.stage("approval").wait_for == SignalWait(
        signal="approve", timeout_ms=1000, on_timeout=SignalTimeout.CONTINUE
    )
    assert sorted(workflow.implementations) == ["draft", "publish"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s: sleep_stage("nap"), "duration_ms= or until="),
        (lambda s: sleep_stage("nap", duration_ms=0), "more than 0"),
        (lambda s: sleep_stage("nap", until="publish_at"), "a path such as"),
        (lambda s: wait_stage("w", s, on_timeout="skip"), '"fail" or "continue"'),
        (lambda s: wait_stage("w", s, on_timeout="continue"), "needs timeout_ms="),
    ],
)
def test_the_builder_refuses_what_the_compiler_refuses(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(define_signal("approve", Decision))


def test_the_builder_checks_signals_and_optional_needs() -> None:
    approve = define_signal("approve", Decision)
    wait = wait_stage("approval", approve, timeout_ms=1000, on_timeout="continue")
    use = define_stage(id="use", output=Out, execute=noop, needs=["approval"])
    with pytest.raises(ValueError, match="list it in optional_needs"):
        WorkflowBuilder("p", "P", signals=[approve]).pipe(wait).pipe(use).build()
    with pytest.raises(ValueError, match="which the workflow does not declare"):
        WorkflowBuilder("p", "P").pipe(wait).build()
    with pytest.raises(ValueError, match="missing dependencies: draft"):
        WorkflowBuilder("p", "P").pipe(sleep_stage("nap", until="draft.ready_at"))


# -- wfc diff ---------------------------------------------------------------------------


def _codes(old: Plan, new: Plan) -> dict[str, str]:
    return {c.code: str(c.verdict) for c in diff_plans(old, new).changes}


def test_diff_judges_signals_and_built_in_stages(tmp_path: Path) -> None:
    old = _plan(tmp_path, "old.wf", WF)
    longer = WF.replace("sleep 1h30m", "sleep 2h").replace("timeout 2d", "timeout 3d")
    assert _codes(old, _plan(tmp_path, "a.wf", longer)) == {
        "stage-sleep-changed": "compatible",
        "stage-wait-timeout-changed": "compatible",
    }
    added = WF.replace("signal ping", "signal ping\n  signal nudge")
    added_plan = _plan(tmp_path, "b.wf", added, warned=("WF385",))
    assert _codes(old, added_plan) == {"signal-added": "compatible"}
    narrowed = WF.replace("note: str? }", "note: str? , level: int }")
    codes = _codes(old, _plan(tmp_path, "c.wf", narrowed))
    assert codes["signal-payload-changed"] == "breaking_if_started"
    other = WF.replace("signal ping", "signal ping\n  signal pong").replace(
        "wait for ping", "wait for pong"
    )
    codes = _codes(old, _plan(tmp_path, "d.wf", other, warned=("WF385",)))
    assert codes["stage-wait-signal-changed"] == "breaking_if_started"
    assert codes["signal-added"] == "compatible"
    removed = other.replace("  signal ping\n", "")
    codes = _codes(old, _plan(tmp_path, "e.wf", removed))
    assert codes["signal-removed"] == "breaking_if_started"
    removal = [c for c in diff_plans(old, _plan(tmp_path, "e.wf", removed)).changes]
    assert [c.affects for c in removal if c.code == "signal-removed"] == [frozenset({"pinged"})]
    kind = WF.replace("stage cool_off { sleep 1h30m }", "stage cool_off { output { x: int } }")
    codes = _codes(old, _plan(tmp_path, "f.wf", kind))
    assert codes["stage-builtin-changed"] == "breaking_if_started"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sleep -1h", "`sleep` takes a duration, or `until`"),
        ("sleep until", "`sleep` takes a duration, or `until`"),
        ("wait approve", "`wait for` names the signal"),
        ("wait for approve, timeout", "a `,` after the signal of `wait for` starts an option"),
    ],
)
def test_syntax_slips_in_sleep_and_wait_are_named(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "w.wf"
    path.write_text(f'workflow w {{\n  stage s "S" {{ input none  {body} }}\n  flow s\n}}\n')
    _, problems = analyse(path)
    assert [p.code for p in problems] == ["WF101"] and problems[0].message.startswith(message)
