"""Checks the user's stage stubs against the current schemas, without importing them.

A stub is created once and then belongs to the user, so a schema change can
leave it behind: the class renamed away, the wrong base, an `execute` whose
types no longer fit, a missing `check_completion` after a stage became async.
This reads each stub with Python's `ast` module (never imports user code) and
says which stub and why, in the same diagnostic form as the `.wf` checks.
"""

from __future__ import annotations

import ast as pyast
from pathlib import Path

from wfc.compiler.codegen_views import StageView
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.loader import read_source
from wfc.compiler.source import SourceFile, Span


def _span(file: SourceFile, node: pyast.AST) -> Span:
    line = getattr(node, "lineno", 1)
    col = getattr(node, "col_offset", 0)
    end_line = getattr(node, "end_lineno", line) or line
    end_col = getattr(node, "end_col_offset", col + 1) or col + 1
    start = file.offset(line, col + 1)
    end = file.offset(end_line, end_col + 1) if end_line == line else start + 1
    return Span(file=file, start=start, end=max(end, start + 1))


def _names_in(node: pyast.AST | None) -> set[str]:
    if node is None:
        return set()
    names = {n.id for n in pyast.walk(node) if isinstance(n, pyast.Name)}
    names |= {n.attr for n in pyast.walk(node) if isinstance(n, pyast.Attribute)}
    strings = [n.value for n in pyast.walk(node) if isinstance(n, pyast.Constant)]
    for text in strings:
        if isinstance(text, str):
            names |= {
                part.strip()
                for part in text.replace("|", " ").replace("[", " ").replace("]", " ").split()
            }
    return names


def check_stub(path: Path, stage: StageView, generated_names: set[str]) -> list[Diagnostic]:
    """Problems that keep the stub at `path` from implementing `stage`; empty when it fits."""
    source = read_source(path)
    if isinstance(source, Diagnostic):
        return [
            Diagnostic(
                code="WF350",
                message=f"stub for stage `{stage.id}` is missing: {path.as_posix()}",
                path=path.as_posix(),
                help="run `wfc compile` to create it",
            )
        ]
    try:
        tree = pyast.parse(source.text, filename=str(path))
    except SyntaxError as error:
        offset = source.offset(error.lineno or 1, error.offset or 1)
        return [
            Diagnostic(
                code="WF351",
                message=f"stub for stage `{stage.id}` is not valid Python: {error.msg}",
                span=Span(file=source, start=offset, end=offset + 1),
            )
        ]
    problems = _check_imports(source, tree, generated_names, stage)
    cls = next(
        (n for n in tree.body if isinstance(n, pyast.ClassDef) and n.name == stage.class_name),
        None,
    )
    if cls is None:
        problems.append(
            Diagnostic(
                code="WF351",
                message=f"stub for stage `{stage.id}` has no class `{stage.class_name}`",
                span=Span(file=source, start=0, end=0),
                help=f"the plan binds stage `{stage.id}` to `{stage.class_name}`: keep that class name",
            )
        )
        return problems
    base = f"{stage.class_name}Stage"
    if not any(base in _names_in(b) for b in cls.bases):
        problems.append(
            Diagnostic(
                code="WF352",
                message=f"`{stage.class_name}` does not subclass `{base}`",
                span=_span(source, cls),
                label="the base class is wrong",
                help=f"declare it as `class {stage.class_name}({base}):`",
            )
        )
    problems += _check_methods(source, cls, stage)
    return problems


def _check_imports(
    source: SourceFile, tree: pyast.Module, generated: set[str], stage: StageView
) -> list[Diagnostic]:
    problems = []
    for node in tree.body:
        if (
            isinstance(node, pyast.ImportFrom)
            and node.level == 2
            and node.module in ("_models", "_stages")
        ):
            for alias in node.names:
                if alias.name not in generated:
                    problems.append(
                        Diagnostic(
                            code="WF356",
                            message=f"stub for stage `{stage.id}` imports `{alias.name}`, "
                            f"which `{node.module}.py` no longer defines",
                            span=_span(source, node),
                            help=f"the stage's output model is now `{stage.output_model}`",
                        )
                    )
    return problems


def _method(cls: pyast.ClassDef, name: str) -> pyast.FunctionDef | pyast.AsyncFunctionDef | None:
    return next(
        (
            n
            for n in cls.body
            if isinstance(n, pyast.FunctionDef | pyast.AsyncFunctionDef) and n.name == name
        ),
        None,
    )


def _check_methods(source: SourceFile, cls: pyast.ClassDef, stage: StageView) -> list[Diagnostic]:
    problems = []
    execute = _method(cls, "execute")
    if execute is None:
        problems.append(
            Diagnostic(
                code="WF353",
                message=f"`{stage.class_name}` does not define `execute`",
                span=_span(source, cls),
                help=f"add `def execute(self, ctx: {stage.class_name}Context) -> {stage.output_model}:`",
            )
        )
    else:
        problems += _check_signature(source, execute, stage, expected_params=2)
    check = _method(cls, "check_completion")
    if stage.is_async and check is None:
        problems.append(
            Diagnostic(
                code="WF354",
                message=f"stage `{stage.id}` is async but `{stage.class_name}` has no `check_completion`",
                span=_span(source, cls),
                help=f"add `def check_completion(self, state: dict[str, Any], ctx: "
                f"{stage.class_name}CheckContext) -> Completion[{stage.output_model}]:`",
            )
        )
    elif stage.is_async and check is not None:
        problems += _check_signature(source, check, stage, expected_params=3)
    elif check is not None:
        problems.append(
            Diagnostic(
                code="WF355",
                message=f"stage `{stage.id}` is not async, so `check_completion` is never called",
                span=_span(source, check),
                help=f"make the stage `async stage {stage.id}` or remove the method",
            )
        )
    return problems


def _check_signature(
    source: SourceFile,
    fn: pyast.FunctionDef | pyast.AsyncFunctionDef,
    stage: StageView,
    expected_params: int,
) -> list[Diagnostic]:
    params = [*fn.args.posonlyargs, *fn.args.args]
    if len(params) != expected_params or fn.args.vararg or fn.args.kwonlyargs:
        shape = "(self, ctx)" if expected_params == 2 else "(self, state, ctx)"
        return [
            Diagnostic(
                code="WF353",
                message=f"`{stage.class_name}.{fn.name}` must take {shape}",
                span=_span(source, fn),
                help=f"write `def {fn.name}{shape}`",
            )
        ]
    ctx_type = (
        f"{stage.class_name}Context" if fn.name == "execute" else f"{stage.class_name}CheckContext"
    )
    annotation = params[-1].annotation
    if annotation is not None and ctx_type not in _names_in(annotation):
        return [
            Diagnostic(
                code="WF353",
                message=f"`ctx` of `{stage.class_name}.{fn.name}` should be `{ctx_type}`",
                span=_span(source, annotation),
                label=f"expected `{ctx_type}`",
            )
        ]
    returns = _names_in(fn.returns)
    if fn.returns is not None and stage.output_model not in returns:
        return [
            Diagnostic(
                code="WF353",
                message=f"`{stage.class_name}.{fn.name}` does not return `{stage.output_model}`, "
                "the stage's output model",
                span=_span(source, fn.returns),
                label="this return type no longer fits the stage's output",
                help=f"return `{stage.output_model}`",
            )
        ]
    if fn.name == "execute" and not stage.is_async and "Suspend" in returns:
        return [
            Diagnostic(
                code="WF353",
                message=f"stage `{stage.id}` is not async, so `execute` cannot return `Suspend`",
                span=_span(source, fn.returns),  # type: ignore[arg-type]
                help=f"declare it as `async stage {stage.id}`",
            )
        ]
    return []
