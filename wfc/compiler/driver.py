"""The compiler's entry points: check files, compile one file to a package.

`check_paths` is what `wfc check` runs: every `.wf`/`.wf.yaml` under the given
paths, plus, for each workflow whose package exists, stale generated files
and stubs that no longer fit. `compile_path` is `wfc compile`: it writes the
package (or, with `check=True`, only lists what would change).
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from wfc.build_stamps import file_hash, text_hash, write_stamp
from wfc.build_stamps import forget as forget_stamp
from wfc.compiler import model
from wfc.compiler.checks import check_program
from wfc.compiler.checks.yaml_help import spell_for_source
from wfc.compiler.diagnostics import Diagnostic, Severity, sort_diagnostics
from wfc.compiler.loader import is_source_path, load_program
from wfc.compiler.stubs import check_stub
from wfc.plan import Plan

if TYPE_CHECKING:
    from wfc.compiler.codegen_views import StageView

# Lowering and rendering (and with them Jinja) are imported where they are used: `wfc check`
# of a workflow whose package does not exist yet needs neither, and importing Jinja and
# the templates' code generator cost it about 30 ms of its start (`tests/unit/
# test_cli_imports.py` keeps it so).


@dataclass(slots=True, kw_only=True)
class CheckResult:
    """Diagnostics of a run over some files, sorted; `ok` when none is an error."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings are allowed)."""
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


@dataclass(slots=True, kw_only=True)
class CompileResult(CheckResult):
    """What `compile_path` did or, in check mode, would do."""

    workflow: model.WorkflowModel | None = None
    plan: Plan | None = None
    out_dir: Path | None = None
    written: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    created_stubs: list[Path] = field(default_factory=list)


P = ParamSpec("P")
R = TypeVar("R")


def collector_paused(run: Callable[P, R]) -> Callable[P, R]:
    """Run a compile with Python's cycle collector off, then turn it back on.

    Parsing and checking allocate a few objects per character and keep almost all of
    them until the end, so each collection of the oldest generation walks everything
    made so far: a 5,000-stage file spent about 40% of its time in the collector.
    Nothing of the compiler's needs a cycle freed early; the collector catches up
    when it is enabled again.
    """

    @functools.wraps(run)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused


def source_name(path: Path) -> str:
    """The file's name without its `.wf` / `.wf.yaml` suffix."""
    name = path.name
    for suffix in (".wf.yaml", ".wf.yml", ".wf"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def default_out_dir(source: Path, workflow_id: str) -> Path:
    """Generated packages go beside the source, named after the workflow."""
    return source.parent / workflow_id


def analyse(path: Path) -> tuple[model.WorkflowModel | None, list[Diagnostic]]:
    """Load, parse and check one file and its imports."""
    checked, diagnostics, _ = _analyse_reading(path)
    return checked, diagnostics


@dataclass(slots=True)
class _Read:
    """What a compile read, for its stamp (`build_stamps`): each file with the hash of the
    text it parsed, and each import as written with the file it resolved to."""

    hashes: dict[Path, str | None]
    links: dict[Path, Path]


def _analyse_reading(path: Path) -> tuple[model.WorkflowModel | None, list[Diagnostic], _Read]:
    """`analyse`, and what it read (the file and everything it imports)."""
    program = load_program(path)
    checked, diagnostics = check_program(program)
    read = _Read(hashes={}, links={path: path.resolve()})
    for module in program.modules.values():
        read.hashes[module.file.path] = text_hash(module.file.text)
        for imported in module.module.imports:
            named = module.file.path.parent / imported.path
            read.links[named] = named.resolve()
    return checked, [*program.diagnostics, *diagnostics], read


def _stale_files(out_dir: Path, files: dict[str, str]) -> list[Path]:
    stale = []
    for rel, content in files.items():
        target = out_dir / rel
        try:
            current = target.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != content:
            stale.append(target)
    return stale


def _generated_names(wf: model.WorkflowModel, views: list[StageView]) -> set[str]:
    names = {r.name for r in wf.records} | {e.name for e in wf.enums}
    names |= {wf.input.name, wf.output.name}
    for stage in views:
        names |= {stage.input_model, stage.output_model, stage.config_model}
        names |= {f"{stage.class_name}{suffix}" for suffix in ("Context", "Stage", "CheckContext")}
    return names | {"StageId", "STAGE_IDS", "is_valid_stage_id", "assert_valid_stage_id"}


def check_stubs(
    wf: model.WorkflowModel,
    out_dir: Path,
    *,
    fresh: frozenset[Path] = frozenset(),
    views: list[StageView] | None = None,
) -> list[Diagnostic]:
    """Stubs in an existing package that no longer fit their stage, or fit no stage at all.
    The `fresh` ones were just written from the template, so fit by construction: reading
    them back cost a 5,000-stage first compile a tenth of its time."""
    from wfc.compiler.codegen import stage_views

    views = stage_views(wf) if views is None else views
    names = _generated_names(wf, views)
    problems: list[Diagnostic] = []
    for stage in views:
        stub = out_dir / "stages" / f"{stage.id}.py"
        if stub not in fresh:
            problems += check_stub(stub, stage, names)
    return spell_for_source(wf.source_name, problems) + _orphan_stubs(wf, out_dir, views)


def _orphan_stubs(
    wf: model.WorkflowModel, out_dir: Path, views: list[StageView]
) -> list[Diagnostic]:
    """Stubs left behind by a stage that was renamed or removed: compiling creates the new
    stage's stub and never deletes user code, so the old one stays, unused, until said.
    (A stage has a stub exactly when it has a view: no need to render the stubs to know.)"""
    stubs = {view.id for view in views}
    folder = out_dir / "stages"
    left = sorted(p for p in folder.glob("*.py") if p.stem not in stubs and p.stem != "__init__")
    return [
        Diagnostic(
            code="WF357",
            message=f"stub for stage `{path.stem}`, which `{wf.id}` no longer has: {path.as_posix()}",
            path=path.as_posix(),
            severity=Severity.WARNING,
            help="the stage was renamed or removed: move its code into the stub of the stage "
            "that replaced it, then delete this file",
        )
        for path in left
    ]


_GENERATED_FROM = re.compile(r"# Generated by wfc from (.+?); edit that file instead\.")


def _generated_from_another(source: Path, out_dir: Path) -> Path | None:
    """The other source beside this one the package was generated from (`t.wf` when compiling
    `t.wf.yaml` of the same workflow id), if it still exists: compiling both would make each
    overwrite the other's package."""
    try:
        header = (out_dir / "__init__.py").read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return None
    found = _GENERATED_FROM.fullmatch(header.strip())
    if found is None or found.group(1) == source.name:
        return None
    other = source.parent / found.group(1)
    return other if other.is_file() else None


def _clash(source: Path, other: Path, out_dir: Path) -> Diagnostic:
    return Diagnostic(
        code="WF361",
        message=f"{source.as_posix()} and {other.as_posix()} both compile into the package "
        f"{out_dir.as_posix()}/",
        path=source.as_posix(),
        help="keep one of the two sources (delete or rename the other), or give the "
        "workflows different ids",
    )


def _write_stale(contents: dict[str, str], target: Path, stale: set[Path]) -> list[Path]:
    """Write the files of `contents` (by path under `target`) that are in `stale` (a set:
    with a list, 5,000 stages made 25 million compares); the paths written."""
    written = []
    for rel, content in contents.items():
        dest = target / rel
        if dest in stale:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(content, encoding="utf-8", newline="\n")
            written.append(dest)
    return written


def _unwritable(source: Path, out_dir: Path, error: OSError) -> Diagnostic:
    where = Path(error.filename).as_posix() if error.filename else out_dir.as_posix()
    return Diagnostic(
        code="WF362",
        message=f"cannot write the package {out_dir.as_posix()}/: {where}: {error.strerror}",
        path=source.as_posix(),
        help="move away what is in the package's place, or compile into another directory "
        "with `-o DIR`",
    )


@collector_paused
def compile_path(path: Path, out_dir: Path | None = None, *, check: bool = False) -> CompileResult:
    """Compile `path` into a package; with `check`, write nothing and list stale files."""
    from wfc.compiler.codegen import render_package, render_stubs, stage_views
    from wfc.compiler.lower import lower

    # A stamp lets the next `wfc run` of an unchanged file skip all this (`build_stamps`).
    # Only for the package beside the source, the one `wfc run` loads: one made elsewhere
    # (`-o`) may hold other stage code. Dropped as the compile starts, written at its end.
    stamped = not check and out_dir is None
    if stamped:
        forget_stamp(path)
    checked, diagnostics, read = _analyse_reading(path)
    result = CompileResult(files=[path], workflow=checked)
    if checked is None:
        if not any(d.severity is Severity.ERROR for d in diagnostics):
            diagnostics.append(
                Diagnostic(
                    code="WF220",
                    message=f"{path.as_posix()} declares no workflow to compile",
                    path=path.as_posix(),
                    help="files with only types are imported by others; compile the file "
                    "that declares `workflow`",
                )
            )
        result.diagnostics = sort_diagnostics(diagnostics)
        return result
    plan = lower(checked)
    target = out_dir or default_out_dir(path, checked.id)
    other = _generated_from_another(path, target)
    if other is not None:
        result.diagnostics = sort_diagnostics([*diagnostics, _clash(path, other, target)])
        return result
    files = render_package(checked, plan)
    views = stage_views(checked)
    all_stubs = render_stubs(checked, views)
    stubs = {rel: text for rel, text in all_stubs.items() if not (target / rel).exists()}
    # The user's stage files, hashed before `check_stubs` reads them (`build_stamps`).
    kept_stubs = {
        target / rel: file_hash(target / rel) for rel in all_stubs if stamped and rel not in stubs
    }
    result.plan, result.out_dir = plan, target
    try:
        result.stale = _stale_files(target, files) + [target / rel for rel in stubs]
        if not check:
            result.written = _write_stale({**files, **stubs}, target, set(result.stale))
    except OSError as error:  # a file where the package's directory goes, a read-only disk, …
        result.diagnostics = sort_diagnostics([*diagnostics, _unwritable(path, target, error)])
        return result
    if not check:
        result.created_stubs = [target / rel for rel in stubs]
        fresh = frozenset(result.created_stubs)
        diagnostics += check_stubs(checked, target, fresh=fresh, views=views)
    result.diagnostics = sort_diagnostics(diagnostics)
    if stamped and result.ok:
        written = {target / rel: text_hash(text) for rel, text in {**files, **stubs}.items()}
        hashes = {**read.hashes, **written, **kept_stubs}
        write_stamp(path, out_dir=target, hashes=hashes, links=read.links)
    return result


def stale_diagnostic(stale: Path, source: Path) -> Diagnostic:
    """WF360 for a file of the package that compiling `source` would change or create."""
    state = "out of date" if stale.exists() else "missing"
    return Diagnostic(
        code="WF360",
        message=f"generated file is {state}: {stale.as_posix()}",
        path=stale.as_posix(),
        help=f"run `wfc compile {source.as_posix()}`",
    )


def iter_sources(paths: Iterable[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand directories into the workflow sources they hold, sorted."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_source_path(p))
        else:
            found.append(path)
    return found, problems


@collector_paused
def check_paths(paths: Iterable[Path]) -> CheckResult:
    """`wfc check`: definitions, stale generated code and stubs, for every source under `paths`."""
    sources, diagnostics = iter_sources(paths)
    packages: dict[Path, Path] = {}  # package directory → the first source compiling into it
    for path in sources:
        checked, found = analyse(path)
        diagnostics += found
        if checked is None:
            continue
        out_dir = default_out_dir(path, checked.id)
        if out_dir in packages:
            diagnostics.append(_clash(path, packages[out_dir], out_dir))
            continue
        packages[out_dir] = path
        if not out_dir.is_dir():
            continue
        other = _generated_from_another(path, out_dir)
        if other is not None:
            if other not in sources:  # else it is reported once, when `other` comes
                diagnostics.append(_clash(path, other, out_dir))
            continue
        from wfc.compiler.codegen import render_package
        from wfc.compiler.lower import lower

        for stale in _stale_files(out_dir, render_package(checked, lower(checked))):
            diagnostics.append(stale_diagnostic(stale, path))
        diagnostics += check_stubs(checked, out_dir)
    return CheckResult(diagnostics=sort_diagnostics(diagnostics), files=sources)
