"""One case per diagnostic code: the code, the exact span, the message and the help."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Diagnostic, Severity, render_text
from wfc.compiler.driver import analyse

OK_STAGE = "stage s { output { x: int } }\n  flow s"


def _wf(body: str) -> str:
    return "workflow w {\n  " + body + "\n}\n"


def _when(condition: str) -> str:
    """A workflow whose stage `b` runs `when <condition>`, reading `input` and stage `a`."""
    return _wf(
        "enum Label { spam, ham }\n"
        "  input { text: str, score: float, flag: bool, tags: list[str] }\n"
        "  stage a { output { label: Label, n: int } }\n"
        f"  stage b {{ input none  needs a  when {condition} }}\n"
        "  flow a -> b"
    )


def _map(settings: str, *, flow: str = "a -> b", more: str = "", output: str = "") -> str:
    """A workflow whose stage `b` says `settings`, after a stage `a` that makes a list."""
    return _wf(
        "type Page { url: str }\n"
        f"  input {{ urls: list[str], n: int }}\n  {output}"
        "  stage a { output { pages: list[Page], count: int } }\n"
        f"  stage b {{ {settings} output {{ x: int }} }}\n{more}"
        f"  flow {flow}"
    )


def _limits(settings: str, more: str = "") -> str:
    """A workflow whose stage `s` says `settings`, with a record and a list in its input."""
    return _wf(
        "type Who { id: str, tags: list[str] }\n"
        "  input { customer: Who, score: float, region: str }\n"
        f"  stage s {{ output {{ x: int }} {settings} }}\n{more}"
        "  flow s"
    )


def _schedule(schedule: str) -> str:
    """A workflow with `schedule`, whose input needs `region`."""
    return _wf(
        "enum Tier { free, paid }\n  input { region: str, tier: Tier = free, n: int = 1 }\n"
        f"  {schedule}\n  {OK_STAGE}"
    )


def _skipping(stages: str, flow: str, output: str = "") -> str:
    """A workflow with a `flag` input for `when`s, and the given stages and flow."""
    return _wf(f"input {{ flag: bool }}\n  {output}{stages}\n  flow {flow}")


# (code, source, text under the caret, message fragment, help fragment)
CASES: list[tuple[str, str, str, str, str | None]] = [
    ("WF101", "workflow w { input { a str } }", "str", "expected `:`", "name: type"),
    ("WF102", 'workflow w { name "abc }', '"', "unterminated string", "close the string"),
    ("WF103", "workflow w { $ }", "$", "unexpected character", None),
    ("WF104", "workflow w { stage s {", "{", "unexpected end of file", "without its `}`"),
    (
        "WF201",
        _wf("input { a: strr }\n  " + OK_STAGE),
        "strr",
        "unknown type `strr`",
        "did you mean `str`?",
    ),
    (
        "WF202",
        _wf("stage s { output { x: int } needs t }\n  flow s"),
        "t",
        "unknown stage `t`",
        "stage t",
    ),
    (
        "WF203",
        _wf("type T { a: int }\n  type T { b: int }\n  " + OK_STAGE),
        "T",
        "duplicate type `T`",
        "rename",
    ),
    (
        "WF205",
        _wf("stage input { output { x: int } }\n  flow input"),
        "input",
        "cannot be a stage id",
        "rename",
    ),
    ("WF206", _wf("enum E { }\n  " + OK_STAGE), "enum E { }", "has no members", "list its values"),
    (
        "WF207",
        _wf("type A { b: B }\n  type B { a: A }\n  " + OK_STAGE),
        "A",
        "contains itself",
        "break the cycle",
    ),
    (
        "WF208",
        _wf("stage s { output { x: int } timeout 1s timeout 2s }\n  flow s"),
        "2s",
        "given more than once",
        "keep one",
    ),
    (
        "WF221",
        _wf(OK_STAGE) + "workflow v { stage t { } flow t }\n",
        "v",
        "one workflow",
        "its own `.wf` file",
    ),
    (
        "WF301",
        _wf('input { a: int = "x" }\n  ' + OK_STAGE),
        '"x"',
        "does not have type `int`",
        "type `int`",
    ),
    (
        "WF302",
        _wf("input { a: int (>= 0) = -1 }\n  " + OK_STAGE),
        "-1",
        "outside the field's bounds",
        None,
    ),
    (
        "WF303",
        _wf("input { a: bool (>= 1) }\n  " + OK_STAGE),
        ">= 1",
        "does not apply to `bool`",
        "numeric bounds",
    ),
    (
        "WF304",
        _wf("input { a: " + "list[" * 40 + "int" + "]" * 40 + " }\n  " + OK_STAGE),
        "list[" * 7 + "int" + "]" * 7,
        "nested more than",
        "named `type`",
    ),
    (
        "WF306",
        _wf('input { a: str (matches "(") }\n  ' + OK_STAGE),
        'matches "("',
        "invalid pattern",
        "regular expression",
    ),
    (
        "WF307",
        _wf("stage s { output { x: int } timeout 5y }\n  flow s"),
        "5y",
        "unknown unit `y`",
        "units are ms",
    ),
    (
        "WF309",
        _wf("stage s { output { x: int } poll every 1m }\n  flow s"),
        "poll every 1m",
        "not an async stage",
        "async stage s",
    ),
    (
        "WF310",
        _wf("stage s { output { x: int } retry 0 times }\n  flow s"),
        "0",
        "at least 1",
        "retry 3 times",
    ),
    (
        "WF313",
        _wf('type C { k: int }\n  stage s { output { x: int } config C ai "m" }\n  flow s'),
        'ai "m"',
        "`ai` cannot add fields to the declared type `C`",
        "inline `config",
    ),
    (
        "WF311",
        _wf(
            "stage a { output { x: int } }\n  stage b { input { y: int } output { z: int } }\n  flow a -> b"
        ),
        "y: int",
        "needs field `y`",
        "default",
    ),
    (
        "WF312",
        _wf(
            "stage a { output { x: str } }\n  stage b { input { x: int } output { z: int } }\n  flow a -> b"
        ),
        "x: int",
        "takes `x` as `int`",
        "make the types agree",
    ),
    (
        "WF401",
        _wf("stage s { output { x: int } }\n  stage t { }\n  flow s"),
        "t",
        "not in the flow",
        "add `t` to `flow`",
    ),
    (
        "WF402",
        _wf("stage s { output { x: int } }\n  flow s -> s"),
        "s",
        "more than once in the flow",
        "keep it in one place",
    ),
    (
        "WF403",
        _wf("stage a { needs b }\n  stage b { }\n  flow [a, b]"),
        "b",
        "same parallel group",
        "move `b` before `a`",
    ),
    (
        "WF404",
        _wf("stage a { needs b }\n  stage b { needs a }\n  flow a -> b"),
        "b",
        "dependency cycle: a -> b -> a",
        "remove one",
    ),
    (
        "WF230",
        _when("inptu.score > 1"),
        "inptu",
        "unknown name `inptu` in the condition of `b`",
        "did you mean `input`?",
    ),
    ("WF231", _when("input.scroe > 1"), "scroe", "has no field `scroe`", "did you mean `score`?"),
    (
        "WF232",
        _when("a.label == Label.spma"),
        "spma",
        "`Label` has no member `spma`",
        "did you mean `spam`?",
    ),
    ("WF320", _when("input.score"), "input.score", "must be true or false", "compare it"),
    ("WF321", _when("input.flag and a.n"), "a.n", "`and` takes true or false", "x > 0"),
    (
        "WF322",
        _when("input.text == 1"),
        "input.text == 1",
        "compares `str` with `int`",
        "same type",
    ),
    ("WF323", _when("input.flag < true"), "input.flag < true", "cannot order `bool`", "`==`"),
    ("WF324", _when('"x" in input.score'), "input.score", "needs a list, a map or a string", None),
    ("WF325", _when("len(a.n) > 1"), "a.n", "`len` takes a list, a map or a string", None),
    ("WF326", _when('input.text in ["a", 1]'), "1", "different types: `str` and `int`", None),
    (
        "WF410",
        _skipping(
            "stage a { output { n: int } when b.m > 0 }\n  stage b { output { m: int } }", "a -> b"
        ),
        "b",
        "the condition of `a` reads `b`, which runs after it",
        "move `b` before `a`",
    ),
    (
        "WF411",
        _skipping(
            "stage a { output { n: int } when input.flag }\n"
            "  stage b { output { m: int } }\n"
            "  stage c { input none  needs a, b }",
            "[a, b] -> c",
        ),
        "a",
        "stage `c` needs `a`, which may be skipped",
        "`needs a?`",
    ),
    (
        "WF412",
        _skipping("stage a { output { n: int } }\n  stage c { input none  needs a? }", "a -> c"),
        "a?",
        "`a` is never skipped",
        "remove the `?`",
    ),
    (
        "WF413",
        _skipping("stage a { output { n: int } when input.flag }", "a", "output { n: int }\n  "),
        "{ n: int }",
        "the workflow output may be missing",
        "end the flow with a stage that always runs",
    ),
    (
        "WF414",
        _skipping(
            "stage b { output { m: int } }\n"
            "  stage a { output { n: int } when input.flag }\n"
            "  stage c { input { n: int }  needs b }",
            "b -> a -> c",
        ),
        "{ n: int }",
        "takes its input from `a`, which may be skipped while `c` still runs",
        "`needs a?`",
    ),
    (
        "WF240",
        _map("map aa.pages"),
        "aa",
        "unknown name `aa` in the `map` of `b`",
        "did you mean `a`?",
    ),
    ("WF241", _map("map a.pagse"), "pagse", "`a` has no field `pagse`", "did you mean `pages`?"),
    ("WF330", _map("map a.count"), "a.count", "`a.count` is `int`", "list[…]"),
    (
        "WF331",
        _map("map a.pages input { url: int }"),
        "{ url: int }",
        "each item of `a.pages` is `Page`, which does not fit the input of `b`",
        "`Page` does not provide `url`",
    ),
    (
        "WF332",
        _map("map a.pages, at most 1001 at once"),
        "1001",
        "`at most` must be a whole number from 1 to 1000",
        "at most 16 at once",
    ),
    (
        "WF333",
        _map("map a.pages input none"),
        "none",
        "mapped stage `b` takes one item as its input",
        "remove `input none`",
    ),
    (
        "WF420",
        _map(
            "map c.pages", flow="a -> b -> c", more="  stage c { output { pages: list[Page] } }\n"
        ),
        "c",
        "stage `b` maps over `c`, which runs after it",
        "move `c` before `b`",
    ),
    (
        "WF421",
        _map(
            "map a.pages",
            flow="a -> b -> c",
            more="  stage c { input from b output { y: int } }\n",
        ),
        "from b",
        "stage `c` takes its input from `b` through `input from`, but `b` is mapped",
        "`input none` with `needs b`",
    ),
    (
        "WF422",
        _map("map input.urls", output="output { x: int }\n"),
        "{ x: int }",
        "the workflow output comes from `b`, a mapped stage",
        "`needs b`",
    ),
    (
        "WF242",
        _limits("concurrency 2 per input.customer.idd"),
        "idd",
        "`input.customer` has no field `idd`",
        "did you mean `id`?",
    ),
    (
        "WF242",
        _limits("concurrency 2 per s.x"),
        "s",
        "`concurrency … per` reads the workflow input, not `s`",
        "per input.customer_id",
    ),
    (
        "WF340",
        _limits("concurrency 0"),
        "0",
        "`concurrency` must be a whole number of at least 1, not `0`",
        "remove `concurrency`",
    ),
    (
        "WF340",
        _limits("rate 0 per minute"),
        "0",
        "`rate` must be a whole number of at least 1",
        "rate 50 per minute",
    ),
    (
        "WF341",
        _limits("concurrency 2 per input.customer.tags"),
        "input.customer.tags",
        "but `input.customer.tags` is `list[str]`",
        "`str`, `int`, `bool` or an enum",
    ),
    (
        "WF341",
        _limits("concurrency 2 per input.score"),
        "input.score",
        "`input.score` is `float`",
        None,
    ),
    (
        "WF342",
        _limits("rate 5 per minutes"),
        "minutes",
        "unknown rate unit `minutes`",
        "did you mean `minute`?",
    ),
    (
        "WF343",
        _limits(
            'rate 5 per minute shared "erp"',
            '  stage t { output { x: int } rate 6 per minute shared "erp" }\n',
        ).replace("flow s", "flow s -> t"),
        '6 per minute shared "erp"',
        "the shared rate `erp` is 6 per minute here, but 5 per minute elsewhere",
        "same rate, or name another budget",
    ),
    (
        "WF344",
        _limits('queue "gpu pool"'),
        '"gpu pool"',
        "the queue name `gpu pool` has characters it may not have",
        "1 to 100 letters",
    ),
    ("WF344", _limits('queue ""'), '""', "the queue name is empty", None),
    (
        "WF370",
        _schedule('schedule nightly "0 25 * * *" { input { region: "eu" } }'),
        '"0 25 * * *"',
        "invalid cron expression `0 25 * * *` in schedule `nightly`: Bad hour",
        "five fields",
    ),
    (
        "WF371",
        _schedule('schedule nightly "0 6 * * *" in "Europe/Pariss" { input { region: "eu" } }'),
        '"Europe/Pariss"',
        "unknown time zone `Europe/Pariss` in schedule `nightly`",
        'did you mean "Europe/Paris"?',
    ),
    (
        "WF372",
        _schedule('schedule nightly "0 6 * * *"'),
        "nightly",
        "the input of schedule `nightly` is missing required field `region`",
        "input { region: … }",
    ),
    (
        "WF372",
        _schedule('schedule nightly "0 6 * * *" { input { region: "eu", tier: gold } }'),
        "gold",
        "field `tier` names `gold`, which is not a member of `Tier`",
        None,
    ),
    (
        "WF372",
        _schedule('schedule nightly "0 6 * * *" { input { region: "eu", n: "2" } }'),
        '"2"',
        "field `n` does not have type `int`",
        None,
    ),
    (
        "WF372",
        _schedule('schedule nightly "0 6 * * *" { input { region: "eu", regoin: "x" } }'),
        '"x"',
        "has field `regoin`, which the workflow input does not declare",
        "did you mean `region`?",
    ),
    (
        "WF373",
        _schedule('schedule nightly "0 6 * * *" { input { region: "eu" } catch up lastest }'),
        "lastest",
        "unknown `catch up` policy `lastest`",
        "did you mean `latest`?",
    ),
    (
        "WF373",
        _schedule('schedule nightly "0 6 * * *" { input { region: "eu" } overlap queue }'),
        "queue",
        "unknown `overlap` policy `queue`",
        "`allow` starts a run anyway",
    ),
    (
        "WF203",
        _schedule(
            'schedule daily "0 6 * * *" { input { region: "eu" } }\n'
            '  schedule daily "0 7 * * *" { input { region: "eu" } }'
        ),
        "daily",
        "duplicate schedule `daily`",
        "rename or remove one of the two schedules",
    ),
    ("WF405", _wf("stage s { }"), "w", "has no `flow`", "flow s"),
    ("WF406", _wf('name "x"'), "w", "has no stages", "declare a stage"),
]


def _diagnose(tmp_path: Path, source: str) -> list[Diagnostic]:
    path = tmp_path / "case.wf"
    path.write_text(source, encoding="utf-8")
    _, diagnostics = analyse(path)
    return diagnostics


def _caret_text(d: Diagnostic) -> str:
    assert d.span is not None
    return d.span.file.text[d.span.start : d.span.end]


@pytest.mark.parametrize(
    ("code", "source", "under", "message", "help"), CASES, ids=[c[0] for c in CASES]
)
def test_diagnostic(
    tmp_path: Path, code: str, source: str, under: str, message: str, help: str | None
) -> None:
    found = [d for d in _diagnose(tmp_path, source) if d.code == code]
    assert found, f"expected {code}, got {[d.code for d in _diagnose(tmp_path, source)]}"
    d = found[0]
    assert message in d.message
    assert _caret_text(d) == under
    assert d.location.startswith(f"{(tmp_path / 'case.wf').as_posix()}:")
    if help is not None:
        assert d.help is not None and help in d.help
    rendered = render_text([d])
    assert f"{d.severity}[{code}]" in rendered and "^" in rendered
    assert d.severity is (Severity.WARNING if code in WARNINGS else Severity.ERROR)


WARNINGS = {"WF412", "WF413"}
"""Codes that are warnings: shown, but `wfc check` still exits 0."""


def test_every_error_of_a_file_comes_out_of_one_run(tmp_path: Path) -> None:
    source = _wf(
        "input { a: Strng, b: int (>= 0) = -5 }\n"
        "  stage s { output { x: int } timeout 3q needs nope }\n"
        "  stage lost { }\n"
        "  stage p { output { y: int } poll every 1m }\n"
        "  flow s -> p"
    )
    codes = sorted(d.code for d in _diagnose(tmp_path, source))
    assert codes == ["WF201", "WF202", "WF302", "WF307", "WF309", "WF401"]


def test_no_cascade_from_an_unknown_type(tmp_path: Path) -> None:
    source = _wf("stage a { output { x: Missing } }\n  stage b { input { x: int } }\n  flow a -> b")
    assert [d.code for d in _diagnose(tmp_path, source)] == ["WF201"]


def test_secondary_label_points_at_first_declaration(tmp_path: Path) -> None:
    d = next(d for d in _diagnose(tmp_path, CASES[6][1]) if d.code == "WF203")
    assert len(d.labels) == 1 and d.labels[0].span.file.line_col(d.labels[0].span.start) == (2, 8)


def test_cycle_help_lists_the_full_path(tmp_path: Path) -> None:
    source = _wf(
        "stage a { needs c }\n  stage b { needs a }\n  stage c { needs b }\n  flow a -> b -> c"
    )
    cycles = [d for d in _diagnose(tmp_path, source) if d.code == "WF404"]
    assert len(cycles) == 1
    assert "a -> c -> b -> a" in cycles[0].message
    assert not [d for d in _diagnose(tmp_path, source) if d.code == "WF403"]


def test_import_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "a.wf").write_text('import "b.wf"\ntype A { x: int }\n')
    (tmp_path / "b.wf").write_text('import "a.wf"\ntype B { y: int }\n')
    _, diagnostics = analyse(tmp_path / "a.wf")
    assert [d.code for d in diagnostics] == ["WF211"]
    assert "a.wf -> b.wf -> a.wf" in diagnostics[0].message


def test_missing_import_points_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "a.wf").write_text('import "nope.wf"\n' + _wf(OK_STAGE))
    _, diagnostics = analyse(tmp_path / "a.wf")
    assert diagnostics[0].code == "WF110" and _caret_text(diagnostics[0]) == 'import "nope.wf"'


def test_an_import_whose_name_is_too_long_for_the_file_system_is_a_diagnostic(
    tmp_path: Path,
) -> None:
    # Found by benchmarks/fuzz_checker.py: `Path.exists` raises ENAMETOOLONG.
    name = "a" * 300 + ".wf"
    (tmp_path / "a.wf").write_text(f'import "{name}"\n' + _wf(OK_STAGE))
    _, diagnostics = analyse(tmp_path / "a.wf")
    assert diagnostics[0].code == "WF110" and "cannot read" in diagnostics[0].message
    assert _caret_text(diagnostics[0]) == f'import "{name}"'


def test_warnings_do_not_fail(tmp_path: Path) -> None:
    assert all(d.severity is Severity.ERROR for d in _diagnose(tmp_path, CASES[0][1]))
