"""Files → parsed modules: reading safely, choosing the front end, following imports.

Anything wrong with a file itself (missing, a directory, binary, not UTF-8,
too large, empty) becomes a diagnostic here; nothing reaches the parser that
is not text. Imports are followed depth first, so an import cycle is found
with its whole path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic, Label
from wfc.compiler.parser import parse_source_all
from wfc.compiler.source import SourceFile, Span

MAX_SOURCE_BYTES = 2 * 1024 * 1024
"""Larger files are refused: no hand-written workflow comes near, and parsing is in memory."""

YAML_SUFFIXES = (".wf.yaml", ".wf.yml")


def is_source_path(path: Path) -> bool:
    """Does this file name look like a workflow source (`.wf` or `.wf.yaml`)?"""
    return path.name.endswith(".wf") or path.name.endswith(YAML_SUFFIXES)


def read_source(path: Path) -> SourceFile | Diagnostic:
    """The file's text, or a diagnostic that says why it cannot be compiled."""
    shown = path.as_posix()
    try:
        return _read_checked(path, shown)
    except OSError as error:  # a name too long for the file system, a denied directory
        return Diagnostic(
            code="WF110", message=f"cannot read {shown}: {error.strerror}", path=shown
        )


def _read_checked(path: Path, shown: str) -> SourceFile | Diagnostic:
    if not path.exists():
        return Diagnostic(
            code="WF110",
            message=f"file not found: {shown}",
            path=shown,
            help="check the path; `wfc check` also accepts a directory of `.wf` files",
        )
    if path.is_dir():
        return Diagnostic(
            code="WF111",
            message=f"{shown} is a directory, not a workflow file",
            path=shown,
            help="`wfc compile` takes one `.wf` file; `wfc check` takes files or directories",
        )
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        return Diagnostic(
            code="WF113",
            message=f"file is too large ({size // 1024} KiB; the limit is "
            f"{MAX_SOURCE_BYTES // 1024} KiB)",
            path=shown,
            help="split the workflow's shared types into files and `import` them",
        )
    return decode_source(path, path.read_bytes())


def decode_source(path: Path, data: bytes) -> SourceFile | Diagnostic:
    """Bytes → text, refusing binary data and anything that is not UTF-8."""
    shown = path.as_posix()
    if b"\x00" in data:
        return Diagnostic(
            code="WF112",
            message=f"{shown} is a binary file, not workflow source",
            path=shown,
            help="workflow files are UTF-8 text",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # Decoded with the bad bytes replaced, so that the diagnostic shows line and column.
        shown_text = data.decode("utf-8-sig", errors="replace")
        before = data[: error.start].decode("utf-8-sig", errors="replace")
        return Diagnostic(
            code="WF112",
            message=f"{shown} is not valid UTF-8: byte {data[error.start]:#04x} "
            f"(byte {error.start} of the file)",
            span=Span(
                file=SourceFile(path=path, text=shown_text), start=len(before), end=len(before) + 1
            ),
            label="this byte is not UTF-8",
            help="save the file as UTF-8 (it was probably saved as Latin-1 or Windows-1252)",
        )
    file = SourceFile(path=path, text=text)
    if not text.strip():
        return Diagnostic(
            code="WF114",
            message="the file is empty",
            span=Span(file=file, start=0, end=0),
            help="declare a workflow: `workflow: {id: name, stages: {…}, flow: …}`"
            if path.name.endswith(YAML_SUFFIXES)
            else "declare a workflow: `workflow name { … }`",
        )
    return file


def parse_file(file: SourceFile) -> ast.Module | list[Diagnostic]:
    """Pick the front end by file name: the module, or every syntax error found."""
    if file.path.name.endswith(YAML_SUFFIXES):
        from wfc.compiler.yaml_front import parse_yaml

        parsed = parse_yaml(file)
        return [parsed] if isinstance(parsed, Diagnostic) else parsed
    return parse_source_all(file)


@dataclass(slots=True, kw_only=True)
class LoadedModule:
    """A parsed file and the files it imports (resolved paths, in order)."""

    file: SourceFile
    module: ast.Module
    imports: list[Path] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Program:
    """The root file and everything it imports, transitively."""

    root: LoadedModule | None
    modules: dict[Path, LoadedModule] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def imported_modules(self) -> list[LoadedModule]:
        """Every module reachable from the root through imports, root excluded, each once."""
        if self.root is None:
            return []
        seen: set[Path] = set()
        order: list[LoadedModule] = []

        def visit(mod: LoadedModule) -> None:
            for dep in mod.imports:
                if dep in seen or dep not in self.modules:
                    continue
                seen.add(dep)
                visit(self.modules[dep])
                order.append(self.modules[dep])

        visit(self.root)
        return order


def _exists(path: Path) -> bool:
    """`Path.exists`, false where the name cannot even be looked up (too long, say)."""
    try:
        return path.exists()
    except OSError:
        return False


def load_program(path: Path) -> Program:
    """Read and parse `path` and, depth first, every file it imports."""
    program = Program(root=None)
    program.root = _load(path, program, stack=[], import_span=None)
    return program


def _load(
    path: Path, program: Program, stack: list[tuple[Path, Span | None]], import_span: Span | None
) -> LoadedModule | None:
    key = path.resolve() if _exists(path) else path
    if key in program.modules:
        return program.modules[key]
    source = read_source(path)
    if isinstance(source, Diagnostic):
        if import_span is not None:
            source = Diagnostic(
                code=source.code,
                message=source.message,
                span=import_span,
                label="imported here",
                help=source.help,
            )
        program.diagnostics.append(source)
        return None
    parsed = parse_file(source)
    if isinstance(parsed, list):
        program.diagnostics.extend(parsed)
        return None
    loaded = LoadedModule(file=source, module=parsed)
    program.modules[key] = loaded
    stack.append((key, import_span))
    for imp in parsed.imports:
        target = (path.parent / imp.path).resolve()
        cycle_at = next((i for i, (p, _) in enumerate(stack) if p == target), None)
        if cycle_at is not None:
            program.diagnostics.append(_cycle_diagnostic(stack[cycle_at:], imp, target))
            continue
        if target in program.modules:
            loaded.imports.append(target)
            continue
        child = _load(target, program, stack, imp.span)
        if child is not None:
            loaded.imports.append(target)
    stack.pop()
    return loaded


def _cycle_diagnostic(
    cycle: list[tuple[Path, Span | None]], closing: ast.Import, target: Path
) -> Diagnostic:
    names = [p.name for p, _ in cycle] + [target.name]
    labels = tuple(
        Label(span=span, message=f"`{p.name}` is imported here")
        for p, span in cycle[1:]
        if span is not None
    )
    return Diagnostic(
        code="WF211",
        message="import cycle: " + " -> ".join(names),
        span=closing.span,
        label="this import closes the cycle",
        labels=labels,
        help="move the shared types into a file that imports neither",
    )
